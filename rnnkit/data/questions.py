"""Questions about images, in VQA v2's formats: a questions file ({"questions": [{"image_id",
"question", "question_id"}]}) and its annotations file beside it (the same name with "annotations"
for "questions": {"annotations": [{"question_id", "multiple_choice_answer", "question_type"?}]}),
with the images in a folder, named from their ids by a pattern (rnnkit data scenes writes
vqa/<split>_questions.json, vqa/<split>_annotations.json and images/000000.png ...; COCO's are
COCO_train2014_000000000009.jpg ...). Questions are lowercased and cut into words like captions; the
answer is the annotation's multiple-choice answer (the most common of its ten human answers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .captions import load_images, normalise
from .examples import BucketedBatches
from .pairs import pad_ids


@dataclass
class Questions:
    images: np.ndarray  # (I, H, W, C) uint8, each image once
    image_of: np.ndarray  # (N,) the row of `images` each question is about
    questions: list[str]
    answers: list[str]
    kinds: list[str]  # question types ("" where the file has none)

    def __len__(self) -> int:
        return len(self.questions)


def _json(path: Path, key: str) -> list:
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid UTF-8 JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise DataError(f"{path}: expected VQA v2's format, an object with a {key!r} list")
    return data[key]


def annotations_path(questions: Path) -> Path:
    if "questions" not in questions.name:
        raise DataError(f"{questions}: a VQA questions file's name has 'questions' in it (its annotations file is "
                        "the same name with 'annotations')")
    return questions.with_name(questions.name.replace("questions", "annotations"))


def read_questions(path: str | Path, image_dir: str = "", pattern: str = "{image_id:06d}.png",
                   image_size: int = 0) -> Questions:
    path = Path(path)
    qs = _json(path, "questions")
    anns = {a.get("question_id"): a for a in _json(annotations_path(path), "annotations")}
    folder = Path(image_dir) if image_dir else path.parent.parent / "images"
    rows, image_ids, questions, answers, kinds = {}, [], [], [], []
    for n, q in enumerate(qs):
        if not isinstance(q, dict) or not {"image_id", "question", "question_id"} <= set(q):
            raise DataError(f"{path}: question {n} needs image_id, question and question_id")
        a = anns.get(q["question_id"])
        if a is None or "multiple_choice_answer" not in a:
            raise DataError(f"{path}: question {q['question_id']} has no answer in {annotations_path(path).name}")
        rows.setdefault(q["image_id"], len(rows))
        image_ids.append(rows[q["image_id"]])
        questions.append(normalise(str(q["question"])))
        answers.append(str(a["multiple_choice_answer"]).strip().lower())
        kinds.append(str(a.get("question_type", "")))
    if not questions:
        raise DataError(f"no questions in {path}")
    names = []
    for image_id in rows:
        try:
            names.append(folder / pattern.format(image_id=image_id))
        except (KeyError, ValueError, IndexError) as e:
            raise DataError(f"--image-pattern {pattern!r} cannot name image {image_id!r} ({e})") from None
    return Questions(load_images(names, image_size), np.array(image_ids, dtype=np.int64), questions, answers, kinds)


class QuestionBatches(BucketedBatches):
    """Batches of B questions bucketed by length; `get(i, epoch)` is (images (B, H, W, C) floats in
    [0, 1], tokens (B, T), lengths (B,), answer ids (B,))."""

    what = "questions"

    def __init__(self, images: np.ndarray, image_of: np.ndarray, tokens: list[np.ndarray], labels: np.ndarray,
                 batch_size: int, seed: int, rank: int = 0, world: int = 1):
        super().__init__([len(t) for t in tokens], batch_size, seed, rank, world)
        self.images, self.image_of, self.tokens, self.labels = images, image_of, tokens, labels

    def get(self, i: int, epoch: int = 0):
        idx = self.indices(i, epoch)
        x = torch.from_numpy(self.images[self.image_of[idx]]).float() / 255.0
        tokens, lengths = pad_ids([self.tokens[j] for j in idx])
        return x, tokens, lengths, torch.from_numpy(self.labels[idx])
