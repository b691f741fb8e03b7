"""Typed configs, one dataclass per component, and their command-line form.

Every field carries its help text in `metadata["help"]`; the CLI builds its flags from these
dataclasses (`--hidden-size` for `hidden_size`) and the Python API takes the same names as keyword
arguments, so the two cannot drift apart. Values are checked when a config is built, so a bad value
is reported once, with the flag's name, before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError


def _opt(default, help, choices=None, cli=True, kind=None, **kw):
    """A dataclass field with its help text (and allowed values) for `--help`; `kind` is the value type
    where the default (None) does not show it."""
    meta = {"help": help, "choices": choices, "cli": cli, "kind": kind}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


CELLS = ("rnn", "lstm", "gru", "mingru", "minlstm")
SCAN_CELLS = ("mingru", "minlstm")  # gates from the input alone, trained with a parallel scan (language models)

# The inspection commands' defaults, here (not in rnnkit.inspect) so that `rnnkit --help` can show
# them without importing NumPy and PyTorch:
# a feature needs this many positions away from its most common value, in at least this many separate
# stretches, to be scored by the cell search (rnnkit.inspect.cells; --min-support, --min-stretches);
MIN_SUPPORT = 50
MIN_STRETCHES = 5
# units of each quantity and layer inlined in the HTML report (--units): 32 x 12 quantity-layers of a
# 2x256 LSTM over 2,000 characters is about 1 MB of base64, against 8 MB for all 256.
DEFAULT_UNITS = 32


@dataclass
class ModelConfig:
    cell: str = _opt("lstm", "recurrent cell: rnn (Elman), lstm or gru; for language models also mingru or minlstm "
                     "(Feng et al. 2024: gates read only the input, trained with a parallel scan); classify also "
                     "takes none (no recurrence: the inputs pooled as they are, the order-blind baseline)",
                     CELLS + ("none",))
    num_layers: int = _opt(2, "number of stacked recurrent layers")
    hidden_size: int = _opt(256, "units in each recurrent layer (H)")
    embed_size: int = _opt(64, "size of the learned character embedding (E)")
    dropout: float = _opt(0.0, "dropout between layers and before the output head, in [0, 1)")
    nonlinearity: str = _opt("tanh", "vanilla RNN activation: tanh or relu", ("tanh", "relu"))
    forget_bias: float | None = _opt(None, "initial LSTM forget-gate bias, e.g. 1.0 (default: PyTorch's uniform init, "
                              "which trained better in our 140 s benchmark)", kind=float)
    vocab_size: int = _opt(0, "number of symbols; set from the data", cli=False)

    recurrent_only = True  # (a class attribute, not a field) whether --cell none is refused
    scan_cells = True  # (a class attribute) whether mingru and minlstm are allowed (the language model)

    def __post_init__(self):
        _check_choices(self)
        if self.cell == "none" and self.recurrent_only:
            raise ConfigError("--cell none (no recurrence) is for classifiers only (--task classify)")
        if self.cell in SCAN_CELLS and not self.scan_cells:
            raise ConfigError(f"--cell {self.cell} is for language models (--task lm) only; "
                              "this task takes rnn, lstm or gru")
        for name in ("num_layers", "hidden_size", "embed_size"):
            _check_positive(name, getattr(self, name))
        if self.vocab_size < 0:
            raise ConfigError(f"vocab_size must be >= 0, got {self.vocab_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.forget_bias is not None:
            _check_finite("forget_bias", self.forget_bias)


_BPE_VOCAB = dict(default=1000, help="tokens of a BPE tokenizer, the 256 bytes included (lm --tokens bpe; seq2seq and "
                  "caption --source-tokens/--target-tokens bpe, with four specials too)")
TOKENS = ("char", "byte", "word", "bpe")


@dataclass
class DataConfig:
    paths: list = _opt([], "text files or directories; empty means the bundled tiny Shakespeare", cli=False)
    glob: str = _opt("**/*.txt", "pattern for files inside a directory given as data, e.g. '**/*.py'")
    byte_level: bool = _opt(False, "model raw bytes (256 symbols) instead of Unicode characters (--tokens byte)")
    tokens: str = _opt("char", "what a text is a sequence of. lm: char (Unicode characters), byte (raw bytes), "
                       "word (the --word-vocab most frequent words of the training split, each with the space "
                       "before it; rarer words spelled in bytes) or bpe (a byte-level BPE tokenizer of --bpe-vocab "
                       "tokens learned on the training split; stored as tokenizer.json in the run); losses are per "
                       "token and also converted to nats per character. classify: char, byte, word (whitespace-"
                       "separated words; words seen fewer than --min-count times in training, and words never "
                       "seen, are read as one unknown-word token) or bpe (learned on the training texts); "
                       "generate: char", TOKENS)
    bpe_vocab: int = _opt(**_BPE_VOCAB)
    word_vocab: int = _opt(2000, "lm --tokens word: tokens of the word vocabulary, the 256 bytes included (the rest "
                           "are the most frequent words of the training split)")
    keep_crlf: bool = _opt(False, "keep Windows (CRLF) and lone CR line endings as they are; by default they become "
                           "LF when text is read, as in Python's text mode, for training and for eval, sample "
                           "--prime and inspect on this run (byte-level runs always keep the bytes)")
    split: tuple = _opt((0.9, 0.05, 0.05), "train,validation,test fractions: of the text, in order (language model; "
                        "default 0.9,0.05,0.05); of the examples, a random split (classify, generate; default "
                        "0.8,0.1,0.1); of a series, in time order (series; 0.7,0.1,0.2); of the distinct sources, "
                        "a random split (seq2seq; 0.9,0.05,0.05)")

    def __post_init__(self):
        self.paths = [str(p) for p in self.paths]
        self.split = parse_split(self.split)
        if not self.glob:
            raise ConfigError("--glob must not be empty")
        _check_choices(self)
        if self.tokens == "byte":  # --byte-level and --tokens byte are one option; runs store both
            self.byte_level = True
        elif self.byte_level:
            if self.tokens != "char":
                raise ConfigError(f"--byte-level models raw bytes; it does not combine with --tokens {self.tokens}")
            self.tokens = "byte"
        for name in ("bpe_vocab", "word_vocab"):
            if getattr(self, name) < 257:
                raise ConfigError(f"{_flag(name)} must be at least 257 (the 256 bytes and one more token), "
                                  f"got {getattr(self, name)}")


@dataclass
class ClassifierConfig(ModelConfig):
    """A many-to-one classifier's model (rnnkit.models.classifier): the recurrent core of ModelConfig,
    read in both directions if asked, pooled over time, then a linear layer to the classes."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    bidirectional: bool = _opt(False, "classify, seq2seq: read each sequence (seq2seq: each source) forwards and "
                               "backwards (two recurrent stacks, their outputs side by side)")
    pooling: str = _opt("last", "classify: how the outputs over time become one vector: last (the final "
                        "state, of each direction), mean, max or attention (a learned weighted mean)",
                        ("last", "mean", "max", "attention"))
    ngram_buckets: int = _opt(0, "classify: rows of a hashed embedding of the n-grams of tokens (characters, or "
                              "words with --tokens word) ending at each step, orders 2 to --ngram-order, added to "
                              "the token's embedding; 0: off")
    ngram_order: int = _opt(4, "classify: the longest n-gram embedded with --ngram-buckets")
    input_dropout: float = _opt(0.0, "classify: dropout on each step's input (the token and n-gram embeddings, or "
                                "the projected vector or frame), in [0, 1)")
    num_classes: int = _opt(0, "number of classes; set from the data", cli=False)
    num_features: int = _opt(0, "values per step of a sequence of vectors (0: the inputs are characters); set from "
                             "the data", cli=False)
    frame_shape: list = _opt([], "height, width and channels of each step's frame when the steps are images (a "
                             "video clip; read by a small CNN); set from the data", cli=False)

    recurrent_only = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_classes < 0 or self.num_features < 0:
            raise ConfigError(f"num_classes and num_features must be >= 0, got {self.num_classes}, {self.num_features}")
        if not 0.0 <= self.input_dropout < 1.0:
            raise ConfigError(f"--input-dropout must be in [0, 1), got {self.input_dropout}")
        if self.cell == "none" and self.pooling == "last":
            raise ConfigError("--cell none has no final state to classify from: give --pooling mean, max or attention")
        if self.frame_shape and (len(self.frame_shape) != 3 or
                                 math.prod(self.frame_shape) != self.num_features or min(self.frame_shape) < 1):
            raise ConfigError(f"frame_shape must be (height, width, channels) of num_features values; got "
                              f"{self.frame_shape} for {self.num_features}")
        if self.ngram_buckets < 0:
            raise ConfigError(f"--ngram-buckets must be >= 0, got {self.ngram_buckets}")
        if self.ngram_buckets and self.num_features:
            raise ConfigError("--ngram-buckets embeds n-grams of characters or words; these examples are sequences "
                              "of vectors or frames")
        if not 2 <= self.ngram_order <= 6:
            raise ConfigError(f"--ngram-order must be between 2 and 6, got {self.ngram_order}")


@dataclass
class GeneratorConfig(ModelConfig):
    """A one-to-many generator's model (rnnkit.models.generator): the character language model of
    ModelConfig over one example at a time, optionally told which class to write."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    condition: str = _opt("both", "generate: how the class reaches the model: init (a learned initial state per "
                          "class), step (a learned class vector added to every step's input), both, or none (an "
                          "unconditional model of the same examples, the baseline)", ("none", "init", "step", "both"))
    num_classes: int = _opt(0, "number of classes; set from the data", cli=False)

    def __post_init__(self):
        super().__post_init__()
        if self.num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {self.num_classes}")


@dataclass
class ExamplesConfig:
    """Examples for a classifier or a generator (rnnkit.data.examples)."""

    paths: list = _opt([], "the examples: TSV/CSV/JSONL files, or a folder with one file per class", cli=False)
    format: str = _opt("auto", "classify, generate: how the examples are stored: tsv or csv (text, label per row; a "
                       "'text,label' header row is skipped), jsonl ({\"text\": ..., \"label\": ...} per line), "
                       "folder (one FILE per class, one example per line, the class named by the file), lines "
                       "(one unlabelled example per line, e.g. names.txt: generate only), npz (sequences of "
                       "vectors: arrays x (N, T, F), y (N,) and optionally lengths (N,)), vectors (the same as a "
                       "CSV: header id,label,<value columns>, one row per step, an example's rows together), or "
                       "auto (by the file's extension, .txt being lines and a .csv with an id,label,... header "
                       "vectors; a directory is a folder)",
                       ("auto", "tsv", "csv", "jsonl", "folder", "lines", "npz", "vectors"))
    split: tuple = _opt((0.8, 0.1, 0.1), "train,validation,test fractions of the examples (a seeded random split)")
    split_seed: int = _opt(0, "classify, generate, seq2seq, caption: seed of the random train/validation/test "
                           "split")
    val: list = _opt([], "classify, generate, seq2seq, vqa, glimpse: a file of validation examples (then --split "
                     "does not take any; vqa: a questions file; glimpse: an .npz of images)", kind=str)
    test: list = _opt([], "classify, generate, seq2seq, vqa, glimpse: a file of test examples (then --split does "
                      "not take any; vqa: a questions file; glimpse: an .npz of images)", kind=str)
    class_weights: bool = _opt(False, "classify: weight the loss by inverse class frequency (imbalanced data)")
    tokens: str = _opt("char", "classify, generate: what a text is a sequence of: char (characters), byte (UTF-8 "
                       "bytes), word (classify only: whitespace-separated words; words seen fewer than --min-count "
                       "times in training, and words never seen, are read as one unknown-word token) or bpe "
                       "(byte-level BPE pieces learned on the training texts; a generator's loss is then per token, "
                       "and eval adds nats per character)", ("char", "byte", "word", "bpe"))
    bpe_vocab: int = _opt(**_BPE_VOCAB)
    min_count: int = _opt(2, "classify --tokens word: keep words seen at least this many times in training")

    def __post_init__(self):
        self.paths, self.val, self.test = _paths(self.paths), _paths(self.val), _paths(self.test)
        self.split = parse_split(self.split)
        _check_choices(self)
        _check_positive("min_count", self.min_count)


@dataclass
class ForecasterConfig(ModelConfig):
    """A forecaster's model (rnnkit.models.forecaster): the values of each step projected to
    embed_size, the recurrent core of ModelConfig, a linear layer to the next step's values."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    num_features: int = _opt(0, "number of value columns; set from the data", cli=False)


@dataclass
class SeriesConfig:
    """A time series for a forecaster (rnnkit.data.series): one CSV, rows in time order."""

    paths: list = _opt([], "the CSV file: a header, a time column and one or more value columns", cli=False)
    time_column: str = _opt("time", "series: the CSV column holding the time (its values must increase)")
    columns: str = _opt("", "series: comma-separated value columns to model (default: every column but the time)")
    split: tuple = _opt((0.7, 0.1, 0.2), "train,validation,test fractions of the series, in time order")

    def __post_init__(self):
        self.paths = [str(p) for p in self.paths]
        self.split = parse_split(self.split)


@dataclass
class Seq2SeqConfig(ModelConfig):
    """An encoder-decoder (rnnkit.models.seq2seq): the recurrent core of ModelConfig for both, the
    encoder optionally bidirectional, the decoder attending to the encoder's states."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    bidirectional: bool = _opt(False, "classify, seq2seq: read each sequence (seq2seq: each source) forwards and "
                               "backwards (two recurrent stacks, their outputs side by side)")
    attention: str = _opt("general", "seq2seq: how the decoder looks at the source: none (Sutskever: the final "
                          "state only), additive (Bahdanau), dot or general (Luong); caption: the same over the "
                          "image's grid (none: Show and Tell); vqa (default none: the whole grid, flattened): "
                          "additive, the question's attention over the grid's cells",
                          ("none", "additive", "dot", "general"))
    input_feeding: bool = _opt(True, "seq2seq, caption: feed each step's attentional vector into the next step "
                               "(Luong; default on for seq2seq, off for caption, where the decoder then runs in one "
                               "call)")
    tie_embeddings: bool = _opt(False, "seq2seq: share the decoder's input embedding and output layer (needs "
                                "--embed-size equal to --hidden-size)")
    label_smoothing: float = _opt(0.0, "seq2seq: label smoothing of the training loss, in [0, 1)")
    sampling_ratio: float = _opt(0.0, "seq2seq: scheduled sampling: feed the decoder its own previous guess instead "
                                 "of the true token with this probability while training, in [0, 1]")
    max_length: int = _opt(0, "seq2seq: longest output when decoding (0: twice the source's length + 10)")
    source_vocab_size: int = _opt(0, "source symbols; set from the data", cli=False)
    target_vocab_size: int = _opt(0, "target symbols; set from the data", cli=False)

    def __post_init__(self):
        super().__post_init__()
        _check_choices(self)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.sampling_ratio <= 1.0:
            raise ConfigError(f"--sampling-ratio must be in [0, 1], got {self.sampling_ratio}")
        _check_non_negative("max_length", self.max_length)
        if self.tie_embeddings and self.embed_size != self.hidden_size:
            raise ConfigError("--tie-embeddings needs --embed-size equal to --hidden-size")


# The target side's options, the same for seq2seq and caption.
_TARGET_TOKENS = dict(default="auto", help="seq2seq, caption: read each target as characters (char), whitespace-"
                      "separated tokens (word: phonemes, words), byte-level BPE pieces (bpe), or auto (seq2seq: word "
                      "if the targets look like spaced symbols from a small set, such as ARPAbet phonemes, else char; "
                      "caption: word)", choices=("auto", "char", "word", "bpe"))


@dataclass
class PairsConfig:
    """Source -> target pairs for an encoder-decoder (rnnkit.data.pairs)."""

    paths: list = _opt([], "TSV files of source<TAB>target pairs", cli=False)
    split: tuple = _opt((0.9, 0.05, 0.05), "train,validation,test fractions of the distinct sources (a seeded "
                        "random split; every pair of a source goes with it)")
    split_seed: int = _opt(0, "seed of the random train/validation/test split")
    val: list = _opt([], "a file of validation examples (then --split does not take any)", kind=str)
    test: list = _opt([], "a file of test examples (then --split does not take any)", kind=str)
    source_tokens: str = _opt("char", "seq2seq: read each source as characters (char), whitespace-separated "
                              "tokens (word) or byte-level BPE pieces learned from the training sources (bpe)",
                              ("char", "word", "bpe"))
    target_tokens: str = _opt(**_TARGET_TOKENS)
    bpe_vocab: int = _opt(**_BPE_VOCAB)

    def __post_init__(self):
        self.paths, self.val, self.test = _paths(self.paths), _paths(self.val), _paths(self.test)
        self.split = parse_split(self.split)
        _check_choices(self)


@dataclass
class CaptionConfig(Seq2SeqConfig):
    """An image captioner (rnnkit.models.captioner): a CNN's feature grid as the memory of the
    encoder-decoder's decoder (--attention none: the image only starts the decoder, Show and Tell)."""

    input_feeding: bool = _opt(False, "caption: feed each step's attentional vector into the next step (Luong)")
    attention_penalty: float = _opt(1.0, "caption: weight of the doubly stochastic regularisation of Xu et al. "
                                    "(each grid cell's attention, summed over the caption, kept near 1); 0 turns it "
                                    "off")
    image_shape: list = _opt([], "height, width and channels of the images; set from the data", cli=False)

    def __post_init__(self):
        super().__post_init__()
        _check_non_negative("attention_penalty", self.attention_penalty)
        self.image_shape = list(self.image_shape)
        if self.image_shape and (len(self.image_shape) != 3 or min(self.image_shape) < 1):
            raise ConfigError(f"image_shape must be (height, width, channels); got {self.image_shape}")


@dataclass
class CaptionDataConfig:
    """Images with captions (rnnkit.data.captions)."""

    paths: list = _opt([], "a captions file: Karpathy's split JSON (Flickr8k/30k, COCO; what rnnkit data scenes "
                       "writes), COCO's captions JSON, or Flickr8k's token file (image#n<TAB>caption)", cli=False)
    split: tuple = _opt((0.8, 0.1, 0.1), "train,validation,test fractions of the images, for a file that has no split "
                        "of its own")
    split_seed: int = _opt(0, "seed of the random train/validation/test split")
    image_size: int = _opt(0, "caption, vqa: resize every image to this many pixels square (0: keep the first "
                           "image's size, and every image must have it)")
    target_tokens: str = _opt(**_TARGET_TOKENS)
    bpe_vocab: int = _opt(**_BPE_VOCAB)
    skip_missing: bool = _opt(False, "caption: leave out the images the captions file names but their folder lacks "
                              "(default: an error naming them)")

    def __post_init__(self):
        self.paths = _paths(self.paths)
        self.split = parse_split(self.split)
        _check_choices(self)
        _check_non_negative("image_size", self.image_size)


@dataclass
class VQAConfig(ModelConfig):
    """A visual question answerer (rnnkit.models.vqa): an RNN over the question, the captioner's CNN
    over the image (the whole grid, or the cells the question attends to), an answer classifier over
    the two."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    inputs: str = _opt("both", "vqa: what the model sees: both (question and image), question (the question-only "
                       "baseline) or image (the image-only baseline)", ("both", "question", "image"))
    attention: str = _opt("none", "vqa: none (the whole grid, flattened) or additive (the question's attention "
                          "over the grid's cells)", ("none", "additive"))
    num_answers: int = _opt(0, "answers seen in training; set from the data", cli=False)
    image_shape: list = _opt([], "height, width and channels of the images; set from the data", cli=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_shape = list(self.image_shape)
        if self.attention != "none" and self.inputs != "both":
            raise ConfigError(f"--attention {self.attention} is the question's attention over the image; it needs "
                              f"--inputs both, not {self.inputs}")


@dataclass
class VQADataConfig:
    """Questions about images with their answers, in VQA v2's formats (rnnkit.data.questions)."""

    paths: list = _opt([], "VQA v2 questions files ({\"questions\": [{\"image_id\", \"question\", \"question_id\"}]}), "
                       "each with its annotations file beside it (the same name with 'annotations' for 'questions')",
                       cli=False)
    val: list = _opt([], "vqa: a questions file of validation questions", kind=str)
    test: list = _opt([], "vqa: a questions file of test questions", kind=str)
    image_dir: str = _opt("", "vqa: the folder of the images (default: the 'images' folder beside the questions "
                          "file's folder, as rnnkit data scenes writes it)")
    image_pattern: str = _opt("{image_id:06d}.png", "vqa: an image's file name from its id, a Python format string "
                              "(COCO's: COCO_train2014_{image_id:012d}.jpg)")
    image_size: int = _opt(0, "caption, vqa: resize every image to this many pixels square (0: keep the first "
                           "image's size, and every image must have it)")

    def __post_init__(self):
        self.paths, self.val, self.test = _paths(self.paths), _paths(self.val), _paths(self.test)
        _check_non_negative("image_size", self.image_size)


@dataclass
class GlimpseConfig(ModelConfig):
    """A recurrent attention model (rnnkit.models.glimpse): a few glimpses of an image through a
    multi-resolution retina, a recurrent core, a location network trained by REINFORCE; or, with
    --network cnn / mlp, a whole-image baseline."""

    scan_cells = False  # mingru/minlstm: language models only (ModelConfig.scan_cells)

    num_layers: int = _opt(1, "number of stacked recurrent layers", cli=False)  # the shared flag's help says 2
    network: str = _opt("ram", "glimpse: ram (the recurrent attention model: glimpses, a recurrent core and a "
                        "location network trained by REINFORCE) or a baseline that sees the whole image: cnn (three "
                        "blocks of 3x3 convolution, ReLU and 2x2 max pooling, then a linear layer) or mlp (two "
                        "hidden layers of --hidden-size)", ("ram", "cnn", "mlp"))
    glimpses: int = _opt(6, "glimpse: how many glimpses the model takes, the first at the centre")
    glimpse_size: int = _opt(8, "glimpse: width of the retina's finest patch in pixels; patch k is glimpse-size * 2^k "
                             "pixels, averaged down to glimpse-size")
    scales: int = _opt(3, "glimpse: patches per glimpse, each twice the width of the one before")
    glimpse_hidden: int = _opt(128, "glimpse: units of the glimpse network's hidden layers (what and where)")
    location_policy: str = _opt("gaussian", "glimpse: how the next location is chosen: gaussian (Mnih et al.: a "
                                "Gaussian around a mean the core's state gives) or grid (one of the cells of the "
                                "glimpse's coarsest patch, scored by a small convolution over that patch and by the "
                                "core's state)", ("gaussian", "grid"))
    location_std: float = _opt(0.3, "glimpse: standard deviation of the location policy in training, in units of "
                               "half the image's width (locations run from -1 to 1)")
    reward: str = _opt("logp", "glimpse: the reward of the locations: logp (the log-probability the classifier gives "
                       "the true class after the last glimpse) or hit (1 for a right class, 0 otherwise: Mnih et al.'s)",
                       ("logp", "hit"))
    reinforce_weight: float = _opt(1.0, "glimpse: weight of the REINFORCE term in the loss, beside the "
                                   "cross-entropy (1) and the baseline's squared error (1)")
    num_classes: int = _opt(0, "number of classes; set from the data", cli=False)
    image_shape: list = _opt([], "height, width and channels of the images; set from the data", cli=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_shape = list(self.image_shape)
        for name in ("glimpses", "glimpse_size", "scales", "glimpse_hidden"):
            _check_positive(name, getattr(self, name))
        if not 0 < self.location_std <= 1:
            raise ConfigError(f"--location-std must be in (0, 1], got {self.location_std}")
        _check_non_negative("reinforce_weight", self.reinforce_weight)


@dataclass
class GlimpseDataConfig:
    """Images with one class each, as .npz files (rnnkit.data.images): x (N, H, W) or (N, H, W, C)
    pixels (uint8 0..255, or floats in [0, 1]), y (N,) class names; what `rnnkit data digits` writes."""

    paths: list = _opt([], "an .npz file of images x (N, H, W[, C]) and classes y (N,)", cli=False)
    val: list = _opt([], "glimpse: an .npz file of validation images", kind=str)
    test: list = _opt([], "glimpse: an .npz file of test images", kind=str)

    def __post_init__(self):
        self.paths, self.val, self.test = _paths(self.paths), _paths(self.val), _paths(self.test)


# Each task's (model config, data config); the trainer's TrainConfig serves them all (rnnkit.tasks).
TASK_CONFIGS = {"lm": (ModelConfig, DataConfig), "classify": (ClassifierConfig, ExamplesConfig),
                "generate": (GeneratorConfig, ExamplesConfig), "series": (ForecasterConfig, SeriesConfig),
                "seq2seq": (Seq2SeqConfig, PairsConfig), "caption": (CaptionConfig, CaptionDataConfig),
                "vqa": (VQAConfig, VQADataConfig), "glimpse": (GlimpseConfig, GlimpseDataConfig)}


@dataclass
class TrainConfig:
    backend: str = _opt("torch", "torch (fast) or numpy (the from-scratch reference; 1 layer, rnn, lstm, mingru "
                        "or minlstm)", ("torch", "numpy"))
    batch_size: int = _opt(32, "number of parallel text streams per batch (B)")
    seq_len: int = _opt(32, "steps of truncated backprop through time per chunk (T); 32 beat 64 in a 140 s budget "
                        "on two corpora and three CPUs (benchmarks/README.md)")
    optimizer: str = _opt("adamw", "adamw, adam, rmsprop, adagrad or sgd (with momentum)",
                          ("adamw", "adam", "rmsprop", "adagrad", "sgd"))
    lr: float = _opt(5e-3, "peak learning rate")
    weight_decay: float = _opt(0.0, "decoupled weight decay (adamw) or L2 penalty (others)")
    beta2: float = _opt(0.999, "adamw/adam: decay rate of the squared-gradient average (lower adapts faster)")
    momentum: float = _opt(0.9, "momentum for sgd")
    lr_schedule: str = _opt("cosine", "constant, step (multiply by --lr-decay every --lr-decay-every steps) "
                            "or cosine (warmup, then cosine to --min-lr over the run)",
                            ("constant", "step", "cosine"))
    warmup_steps: int = _opt(50, "linear warmup steps for the cosine schedule")
    min_lr: float = _opt(0.02, "cosine schedule: final learning rate as a fraction of --lr")
    lr_decay: float = _opt(0.97, "step schedule: factor applied every --lr-decay-every steps")
    lr_decay_every: int = _opt(1000, "step schedule: steps between decays")
    grad_clip: float = _opt(5.0, "clip gradients to this global norm (or value with --clip-mode value); 0 disables")
    clip_mode: str = _opt("norm", "norm (global L2 norm) or value (each element)", ("norm", "value"))
    max_steps: int = _opt(0, "stop after this many optimizer steps (0: no limit)")
    max_epochs: float = _opt(0.0, "stop after this many passes over the training split (0: no limit)")
    budget: float = _opt(0.0, "stop after this much training time, e.g. 90s, 10m, 1h (0: no limit)")
    eval_every: int = _opt(1000, "measure the validation loss every this many steps (0: only at the end)")
    eval_max_chars: int = _opt(2_000_000, "validate on at most this many characters (0: the whole split)")
    checkpoint_every: int = _opt(500, "write the resumable checkpoint every this many steps")
    sample_every: int = _opt(500, "print a short sample every this many steps (0: never)")
    sample_length: int = _opt(200, "length of the periodic samples and of the final one (0: none)")
    on_divergence: str = _opt("stop", "when the loss becomes NaN or infinite or explodes: stop (naming the step and "
                              "the last good checkpoint) or rollback (reload the last checkpoint, halve the "
                              "learning rate, go on)", ("stop", "rollback"))
    max_rollbacks: int = _opt(3, "with --on-divergence rollback: stop after this many rollbacks")
    seed: int = _opt(1337, "random seed for initialisation, dropout and samples")
    threads: int = _opt(0, "CPU threads for PyTorch (0: PyTorch's default)")
    device: str = _opt("cpu", "cpu, cuda, mps (Apple GPU) or auto (cuda, else mps, else cpu)",
                       ("cpu", "cuda", "mps", "auto"))
    precision: str = _opt("auto", "fp32; bf16 or fp16 mixed precision (autocast; fp16 with loss scaling); or auto: "
                          "on CUDA GPUs with TF32 fp32 for language models and forecasters (cuDNN runs fp32 "
                          "recurrences in TF32; bf16 was slower on an H200), else bf16 where the GPU supports it, "
                          "fp16 on other CUDA GPUs; on CPUs fp32, except bf16 "
                          "for the tasks measured faster in it (generate; seq2seq without input feeding or scheduled "
                          "sampling) on CPUs with AVX-512 BF16 or AMX", ("auto", "fp32", "bf16", "fp16"))

    def __post_init__(self):
        _check_choices(self)
        for name in ("batch_size", "seq_len", "lr_decay_every", "checkpoint_every"):
            _check_positive(name, getattr(self, name))
        for name in ("warmup_steps", "max_steps", "eval_every", "eval_max_chars", "sample_every", "sample_length", "threads",
                     "max_rollbacks", "weight_decay", "momentum", "grad_clip", "max_epochs"):
            _check_non_negative(name, getattr(self, name))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.min_lr <= 1.0:
            raise ConfigError(f"--min-lr is a fraction of --lr and must be in [0, 1], got {self.min_lr}")
        if not 0.0 <= self.beta2 < 1.0:
            raise ConfigError(f"--beta2 must be in [0, 1), got {self.beta2}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        self.budget = parse_duration(self.budget)


@dataclass
class SampleConfig:
    length: int = _opt(500, "number of characters to generate")
    temperature: float = _opt(1.0, "divide logits by this (> 0); lower is more conservative")
    top_k: int = _opt(0, "sample only from the k most likely characters (0: all)")
    top_p: float = _opt(1.0, "sample from the smallest set of characters whose probability reaches p, in (0, 1]")
    greedy: bool = _opt(False, "always take the most likely character (deterministic)")
    beam: int = _opt(0, "beam search with this many beams instead of sampling (0: off)")
    prime: str = _opt("", "text to run through the model before generating; it is printed first")
    seed: int = _opt(0, "random seed (0: a random one)")
    num_samples: int = _opt(1, "number of independent samples")
    stop: str = _opt("", "end a sample once it produces this string (included in the output)")
    unknown: str = _opt("error", "characters of the prime that the vocabulary lacks: error or skip",
                        ("error", "skip"))
    sample_weights: str = _opt("fp32", "the compiled sampler's copy of the weights: fp32 (the same text as the "
                               "NumPy path for a seed); bf16 (half the bytes a step reads; each next-character "
                               "probability within 0.01 of fp32's) or int8 (a quarter: whole numbers with a scale "
                               "per column; within 0.02), faster for models whose weights outgrow the CPU's cache, "
                               "such as 2x512. For rnn, lstm and gru; mingru and minlstm step on NumPy in fp32",
                               ("fp32", "bf16", "int8"))

    def __post_init__(self):
        _check_choices(self)
        _check_non_negative("length", self.length)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"--temperature must be > 0, got {self.temperature}")
        _check_non_negative("top_k", self.top_k)
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        _check_non_negative("beam", self.beam)
        _check_positive("num_samples", self.num_samples)


@dataclass
class ServeConfig:
    """`rnnkit serve`: where it listens and how much one request, and all of them, may ask for."""
    host: str = _opt("127.0.0.1", "address to listen on; the server has no authentication, so 0.0.0.0 "
                     "(every interface) exposes it to the network")
    port: int = _opt(8000, "TCP port to listen on (0: any free port; the address is printed at start)")
    max_length: int = _opt(2000, "most characters one generate request may ask for (per sample)")
    max_samples: int = _opt(16, "most samples (n) one generate request may ask for")
    max_streams: int = _opt(256, "samples generated at once per model, over all requests; beyond it a request "
                            "gets 503 with Retry-After until some finish")
    max_jobs: int = _opt(32, "predict, score and beam-search requests running or waiting at once; beyond it 503")
    max_body: int = _opt(65536, "largest request body in bytes; larger bodies get 413")
    max_text: int = _opt(20000, "most characters of text one predict or score request may send")
    flush: float = _opt(0.05, "seconds between two pieces of a streamed sample (characters generated in "
                        "between travel together)")

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        for name in ("max_length", "max_samples", "max_streams", "max_jobs", "max_body", "max_text"):
            _check_positive(name, getattr(self, name))
        _check_non_negative("flush", self.flush)


# ---------------------------------------------------------------------------------------------
# Value parsing and checks


def parse_duration(value: Any) -> float:
    """'90s', '10m', '1.5h', '120' or a number -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*", str(value))
        if not m:
            raise ConfigError(f"--budget must look like 90s, 10m or 1h, got {value!r}")
        seconds = float(m.group(1)) * {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"--budget must be a non-negative duration, got {value!r}")
    return seconds


def parse_split(value: Any) -> tuple:
    """'0.9,0.05,0.05' or a sequence of three fractions -> a tuple that sums to 1."""
    try:
        parts = [float(p) for p in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise ConfigError(f"--split must be three fractions like 0.9,0.05,0.05, got {value!r}") from None
    if len(parts) != 3 or any(not math.isfinite(p) or p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise ConfigError(f"--split must be three non-negative fractions summing to 1, got {value!r}")
    if parts[0] <= 0:
        raise ConfigError("--split must give the training part a fraction > 0")
    return tuple(parts)


def _paths(value) -> list[str]:
    """A path or a list of paths -> a list of strings."""
    return [str(value)] if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__") else [str(p) for p in value]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_choices(config) -> None:
    """Every field declared with `choices` holds one of them."""
    for f in fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and value not in choices:
            raise ConfigError(f"{_flag(f.name)} must be one of {', '.join(choices)}; got {value!r}")


def _check_positive(name, value):
    if not value > 0:
        raise ConfigError(f"{_flag(name)} must be > 0, got {value}")


def _check_non_negative(name, value):
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{_flag(name)} must be >= 0, got {value}")


def _check_finite(name, value):
    if not math.isfinite(value):
        raise ConfigError(f"{_flag(name)} must be a finite number, got {value}")


# ---------------------------------------------------------------------------------------------
# Building configs from keyword overrides (the Python API) and from argparse (the CLI)


def build(cls, overrides: dict | None = None, base=None):
    """A new `cls` from `base` (or defaults) with `overrides` applied; never mutates `base`."""
    values = dataclasses.asdict(base) if base is not None else {}
    values.update(overrides or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    try:
        return cls(**values)
    except TypeError as exc:  # a value of the wrong type reaching a comparison
        raise ConfigError(f"invalid {cls.__name__} value: {exc}") from None


def split_overrides(overrides: dict, *classes) -> list[dict]:
    """Route keyword options to the config class that owns them; reject names no class has."""
    routed = [dict() for _ in classes]
    for key, value in overrides.items():
        for i, cls in enumerate(classes):
            if key in {f.name for f in fields(cls)}:
                routed[i][key] = value
                break
        else:
            raise ConfigError(f"unknown option {key!r}")
    return routed


def add_arguments(parser: argparse.ArgumentParser, cls, title: str, seen: set | None = None) -> None:
    """One flag per CLI field of `cls`; defaults are None so only flags the user gave override.
    `seen`: fields already given a flag by another config (tasks share ModelConfig's fields)."""
    group = parser.add_argument_group(title)
    for f in fields(cls):
        if not f.metadata.get("cli", True) or (seen is not None and f.name in seen):
            continue
        if seen is not None:
            seen.add(f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata["help"]
        if isinstance(default, bool):
            group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        if isinstance(default, tuple):
            shown = ",".join(f"{x:g}" for x in default)
            kind = str
        elif f.name == "budget":
            shown, kind = "none", str
        else:
            shown, kind = default, f.metadata["kind"] or type(default)
        group.add_argument(_flag(f.name), dest=f.name, type=kind, default=None,
                           metavar=f.name.upper().split("_")[-1] if not f.metadata["choices"] else None,
                           choices=f.metadata["choices"],
                           help=help_text if default in (None, [], "") else f"{help_text} (default: {shown!s})")


def overrides_from_args(args: argparse.Namespace, cls) -> dict:
    """The values the user actually passed for `cls`'s flags."""
    return {f.name: getattr(args, f.name) for f in fields(cls)
            if f.metadata.get("cli", True) and getattr(args, f.name, None) is not None}


def to_dict(config) -> dict:
    return dataclasses.asdict(config)
