"""Feature functions of a text, one value per character, for the interpretable-cell search.

A feature takes the whole text and returns an array of length T: booleans (the character is inside
a string, a comment, quotes ...) or numbers (bracket depth, position in the line ...). Value t
describes the situation *after reading character t*, which is what the state after step t can know
(an opening quote is already inside the quotes; a closing one is already outside).

Users add their own: any function `f(text: str) -> sequence of T numbers or booleans`. NaN marks
positions where a feature does not apply; the search leaves them out, and leaves out a whole feature
that differs from its most common value too rarely (rnnkit.inspect.cells.MIN_SUPPORT).
"""

from __future__ import annotations

import numpy as np

VOWELS = set("aeiouAEIOU")


def in_double_quotes(text: str) -> np.ndarray:
    """Inside "...": a double quote toggles, whatever the language."""
    return np.cumsum([c == '"' for c in text]) % 2 == 1


def bracket_depth(text: str) -> np.ndarray:
    """Nesting depth of (), [] and {} (never below 0)."""
    depth, out = 0, np.empty(len(text), dtype=np.float32)
    for t, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}" and depth:
            depth -= 1
        out[t] = depth
    return out


def in_parentheses(text: str) -> np.ndarray:
    """Inside at least one pair of round brackets."""
    depth, out = 0, np.zeros(len(text), dtype=bool)
    for t, c in enumerate(text):
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        out[t] = depth > 0
    return out


def _lines(text: str):
    """(start, end) of every line, end excluding the newline."""
    start = 0
    for line in text.split("\n"):
        yield start, start + len(line)
        start += len(line) + 1


def line_position(text: str) -> np.ndarray:
    """Characters of the current line read so far (1 at its first character, 0 at the newline)."""
    out, pos = np.empty(len(text), dtype=np.float32), 0
    for t, c in enumerate(text):
        pos = 0 if c == "\n" else pos + 1
        out[t] = pos
    return out


def chars_to_line_end(text: str) -> np.ndarray:
    """Characters still to come before the next newline (the paper's line-length cell counts this down)."""
    out = np.zeros(len(text), dtype=np.float32)
    for start, end in _lines(text):
        out[start:end] = np.arange(end - start - 1, -1, -1)
    return out


def indent_depth(text: str) -> np.ndarray:
    """Leading spaces of the current line (a tab counts 4), held for the whole line."""
    out = np.zeros(len(text), dtype=np.float32)
    for start, end in _lines(text):
        line = text[start:end]
        stripped = line.lstrip(" \t")
        indent = len(line[:len(line) - len(stripped)].replace("\t", "    "))
        out[start:min(end + 1, len(text))] = indent
    return out


def at_word_boundary(text: str) -> np.ndarray:
    """The character is not part of a word (not a letter, digit or underscore)."""
    return np.array([not (c.isalnum() or c == "_") for c in text], dtype=bool)


def is_vowel(text: str) -> np.ndarray:
    """The character is a vowel (against every other character)."""
    return np.array([c in VOWELS for c in text], dtype=bool)


def vowel_vs_consonant(text: str) -> np.ndarray:
    """1 at a vowel, 0 at a consonant, NaN (left out of the scoring) at anything that is not a letter."""
    return np.array([1.0 if c in VOWELS else 0.0 if c.isalpha() else np.nan for c in text])


def _python_scan(text: str):
    """(in_string, in_comment) per character for Python-like code: '#' comments to the end of the
    line; '...', "...", '''...''' and \"\"\"...\"\"\" strings with backslash escapes."""
    in_string = np.zeros(len(text), dtype=bool)
    in_comment = np.zeros(len(text), dtype=bool)
    t, n, delim = 0, len(text), None
    while t < n:
        c = text[t]
        if delim is None:
            if c == "#":
                end = text.find("\n", t)
                end = n if end < 0 else end
                in_comment[t:end] = True
                t = end
                continue
            if c in "'\"":
                delim = text[t:t + 3] if text[t:t + 3] in ("'''", '"""') else c
                in_string[t:t + len(delim)] = True
                t += len(delim)
                continue
        else:
            in_string[t] = True
            if c == "\\":
                in_string[t:t + 2] = True
                t += 2
                continue
            if text.startswith(delim, t):
                in_string[t:t + len(delim)] = False  # the closing quote ends the string
                t += len(delim)
                delim = None
                continue
            if c == "\n" and len(delim) == 1:
                delim = None  # an unterminated one-line string ends at the newline
        t += 1
    return in_string, in_comment


def in_string(text: str) -> np.ndarray:
    """Inside a Python string literal (code)."""
    return _python_scan(text)[0]


def in_comment(text: str) -> np.ndarray:
    """Inside a '#' comment (code)."""
    return _python_scan(text)[1]


def in_angle_tag(text: str) -> np.ndarray:
    """Inside an XML/HTML tag, between '<' and '>'."""
    inside, out = False, np.zeros(len(text), dtype=bool)
    for t, c in enumerate(text):
        if c == "<":
            inside = True
        out[t] = inside
        if c == ">":
            inside = False
            out[t] = False
    return out


def in_latex_math(text: str) -> np.ndarray:
    """Inside $...$ (LaTeX or Markdown math)."""
    return np.cumsum([c == "$" for c in text]) % 2 == 1


BUILTIN = {
    "in_double_quotes": in_double_quotes, "in_string": in_string, "in_comment": in_comment,
    "bracket_depth": bracket_depth, "in_parentheses": in_parentheses, "indent_depth": indent_depth,
    "line_position": line_position, "chars_to_line_end": chars_to_line_end, "at_word_boundary": at_word_boundary,
    "is_vowel": is_vowel, "vowel_vs_consonant": vowel_vs_consonant, "in_angle_tag": in_angle_tag, "in_latex_math": in_latex_math,
}


def load_features(path: str) -> dict:
    """User features from a Python file or importable module: its `FEATURES` dict, or else every
    function whose name starts with `feature_` (the prefix is dropped from the name)."""
    import importlib
    import importlib.util
    from pathlib import Path

    from ..errors import RnnkitError
    try:
        if path.endswith(".py") or Path(path).is_file():
            spec = importlib.util.spec_from_file_location(Path(path).stem, path)
            if spec is None or spec.loader is None:
                raise RnnkitError(f"cannot load features from {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # the user's own code, run on the user's request
        else:
            module = importlib.import_module(path)
    except (OSError, ImportError, SyntaxError) as exc:
        raise RnnkitError(f"cannot load features from {path}: {exc}") from None
    found = getattr(module, "FEATURES", None) or {
        name[len("feature_"):]: fn for name, fn in vars(module).items() if name.startswith("feature_") and callable(fn)}
    if not found:
        raise RnnkitError(f"{path} defines no FEATURES dict and no feature_* functions")
    return dict(found)
