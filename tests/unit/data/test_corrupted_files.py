"""Seeded random corruptions of a good small file (issue 19): ``inspect_data`` and the data stage's
``prepare_data`` either pass or fail with the package's own error naming the file, never with
another exception, and inspect's verdict is whether the stage passes."""

from __future__ import annotations

import random

import pytest

from sttune_helpers.config import load_preset
from sttune_helpers.core.errors import SttuneError
from sttune_helpers.data import inspect_data, prepare_data

ROWS = 40
# Messages about the data as a whole, after every row was read: they name no single file.
DATA_WIDE = ("data: the validation split is empty", "data: the test split is empty", "data: the train split is empty")


def _good_csv() -> bytes:
    lines = ["sentence1,sentence2,score"]
    lines += [f"a sentence about topic {i},another sentence on subject {i * 7 % 13},{i % 6}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


def _good_jsonl() -> bytes:
    import json

    return "".join(json.dumps({"sentence1": f"a sentence about topic {i}",
                               "sentence2": f"another sentence on subject {i * 7 % 13}", "score": i % 6}) + "\n"
                   for i in range(ROWS)).encode()


def _corrupt(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One to three random corruptions (some harmless) of ``data``; returns the bytes and what was done."""
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        lines = data.split(b"\n")
        kind = rng.choice(["truncate_line", "swap_delimiter", "remove_delimiter", "inject_bytes", "nul",
                           "invalid_utf8", "duplicate_header_cell", "remove_header_cell", "quote",
                           "truncate_file", "empty", "drop_line", "duplicate_line", "blank_line", "crlf",
                           "trailing_spaces"])
        at = rng.randrange(len(lines))
        line = lines[at]
        if kind == "truncate_line" and line:
            lines[at] = line[:rng.randrange(len(line))]
        elif kind == "swap_delimiter":
            lines[at] = line.replace(b",", rng.choice([b";", b"\t", b"|", b", "]), rng.randint(1, 3))
        elif kind == "remove_delimiter":
            lines[at] = line.replace(b",", b"", 1)
        elif kind in ("inject_bytes", "nul", "invalid_utf8", "quote"):
            junk = {"inject_bytes": bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))), "nul": b"\x00",
                    "invalid_utf8": rng.choice([b"\xff", b"\xe8", b"\xc3", b"\x80\x80"]), "quote": b'"'}[kind]
            pos = rng.randint(0, len(line))
            lines[at] = line[:pos] + junk + line[pos:]
        elif kind == "duplicate_header_cell":
            cells = lines[0].split(b",")
            lines[0] = b",".join(cells + [rng.choice(cells)])
        elif kind == "remove_header_cell":
            cells = lines[0].split(b",")
            del cells[rng.randrange(len(cells))]
            lines[0] = b",".join(cells)
        elif kind == "truncate_file":
            data = data[:rng.randrange(len(data) + 1)]
            done.append(kind)
            continue
        elif kind == "empty":
            data = b""
            done.append(kind)
            continue
        elif kind == "blank_line":
            lines.insert(at, b"")
        elif kind == "crlf":
            data = data.replace(b"\n", b"\r\n")
            done.append(kind)
            continue
        elif kind == "trailing_spaces":
            lines[at] = line + b"  \t"
        elif kind == "drop_line":
            del lines[at]
        elif kind == "duplicate_line":
            lines.insert(at, line)
        done.append(kind)
        data = b"\n".join(lines)
    return data, done


SEEDS = list(range(40))
XFAIL: dict[tuple[str, int], str] = {}


def _cases():
    for fmt in ("csv", "jsonl"):
        for seed in SEEDS:
            marks = [pytest.mark.xfail(strict=True, reason=XFAIL[(fmt, seed)])] if (fmt, seed) in XFAIL else []
            yield pytest.param(fmt, seed, marks=marks, id=f"{fmt}-{seed}")


@pytest.mark.parametrize(("fmt", "seed"), _cases())
def test_a_corrupted_file_fails_with_its_name_or_passes(tmp_path, fmt, seed):
    rng = random.Random(seed)
    good = _good_jsonl() if fmt == "jsonl" else _good_csv()
    data, done = _corrupt(good, rng)
    path = tmp_path / f"corrupted.{fmt}"
    path.write_bytes(data)
    defaults = load_preset("default")
    config = defaults.with_overrides({"data.source": str(path)}).data
    try:
        prepare_data(config, defaults.seed)
        stage_error = None
    except SttuneError as exc:
        stage_error = str(exc)
    inspection = inspect_data(str(path))
    verdict = inspection.render()
    assert inspection.usable == (stage_error is None), (done, stage_error, verdict)
    if stage_error is not None:
        assert str(path) in stage_error or stage_error.startswith(DATA_WIDE), (done, stage_error)
        assert str(path) in verdict or (inspection.fatal or "").startswith(DATA_WIDE), (done, verdict)
