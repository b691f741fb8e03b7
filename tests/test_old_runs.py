"""A run directory made by the previous release (rnnkit 0.1.0, before tasks, line-ending
normalisation and the limits rule at resume) still loads, samples the same text, evaluates to the
same loss and resumes. tests/fixtures/run-0.1.0 was written by that release; the expected outputs
beside it were computed by that release too."""

import json
import shutil
from pathlib import Path

import rnnkit
from rnnkit.data import bundled_corpus

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "run-0.1.0-expected.json").read_text())


def test_an_old_run_loads_samples_and_evaluates_as_it_did(tmp_path):
    run = FIXTURES / "run-0.1.0"
    s = EXPECTED["sample"]
    model = rnnkit.load(run)
    assert model.keep_crlf  # it was trained on text as it was
    assert model.sample(prime=s["prime"], length=s["length"], seed=s["seed"], temperature=s["temperature"]) == s["text"]
    text = tmp_path / "eval.txt"
    text.write_text(bundled_corpus().read_text()[20000:24000], encoding="utf-8")
    result = rnnkit.evaluate(run, text)
    assert result["chars"] == EXPECTED["eval"]["chars"] and abs(result["nats"] - EXPECTED["eval"]["nats"]) < 1e-6


def test_an_old_run_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "run-0.1.0", run)
    data = tmp_path / "train.txt"  # the run's training text, moved here with it
    data.write_text(bundled_corpus().read_text()[:20000], encoding="utf-8")
    config = json.loads((run / "config.json").read_text())
    config["data"]["paths"] = [str(data)]
    (run / "config.json").write_text(json.dumps(config))
    resumed = rnnkit.train(resume=run, max_steps=40, progress=False, log=lambda m: None)
    assert resumed.step == 40
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "lm" and config["data"]["keep_crlf"] is True and config["train"]["max_steps"] == 40
