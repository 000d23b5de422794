"""Hostile and broken input, end to end through the `sttune` command as a user runs it: each case
ends with a message naming what is wrong and where (file, row, column or key), a non-zero exit, and
nothing half-written in the run directory. docs/hostile-input.md has the table of these cases.

Most data cases go through `sttune data inspect` (a second or two each); a few go through
`sttune run` to show the run directory's side; a full disk is simulated in-process."""

import errno
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, sttune, sttune_env

from sttune_helpers import rundir
from sttune_helpers.config import load_preset
from sttune_helpers.core.io import atomic_directory
from sttune_helpers.rundir import STAGES

SCIFACT = REPO / "tests" / "data" / "scifact-mini"
SNLI = REPO / "tests" / "data" / "snli-sample.tsv"
QUICK_S = 120  # a command that fails before any kernel starts; generous for a loaded 2-core machine


def inspect(path, *args, cwd):
    result = sttune("data", "inspect", str(path), *args, cwd=cwd, timeout=QUICK_S)
    return result.returncode, result.stdout + result.stderr


def pairs_file(tmp_path, lines, name="pairs.csv", header="sentence1,sentence2,score"):
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_rows(n=8, start=0):
    return [f"sentence number {i},another sentence {i},{i % 5}" for i in range(start, start + n)]


# --- data files: `sttune data inspect` ---------------------------------------------------------------


def test_empty_file_and_header_only(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, out = inspect(empty, cwd=tmp_path)
    assert code == 1 and f"{empty}: file is empty" in out and "usable: no" in out
    header = pairs_file(tmp_path, [], name="header.csv")
    code, out = inspect(header, cwd=tmp_path)
    assert code == 1 and f"{header}: file has a header but no data rows" in out
    blank_lines = tmp_path / "blank.csv"
    blank_lines.write_text("sentence1,sentence2,score\n\n\n")
    code, out = inspect(blank_lines, cwd=tmp_path)
    assert code == 1 and "file has a header but no data rows" in out


def test_missing_required_column(tmp_path):
    path = pairs_file(tmp_path, ["a,b", "c,d"], header="sentence1,sentence2")
    code, out = inspect(path, "--shape", "pair_score", cwd=tmp_path)
    assert code == 1
    assert (f"{path}, row 1, column 'score': missing column 'score': the pair_score shape needs columns sentence1, "
            "sentence2, score; found sentence1, sentence2") in out
    code, out = inspect(path, cwd=tmp_path)  # shape auto: says what each shape needs
    assert code == 1 and "cannot tell the task shape from the columns sentence1, sentence2" in out
    assert "pair_score: sentence1, sentence2, score" in out and "data.columns" in out


def test_wrong_delimiter(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1;sentence2;score\na;b;1\nc;d;2\n")
    code, out = inspect(path, cwd=tmp_path)
    assert code == 1
    assert f"{path}, row 1: found a single column 'sentence1;sentence2;score' with delimiter ','" in out
    assert "the header contains ';'" in out and "Wrong delimiter?" in out
    tsv = tmp_path / "pairs.tsv"  # commas in a .tsv
    tsv.write_text("sentence1,sentence2,score\na,b,1\n")
    code, out = inspect(tsv, cwd=tmp_path)
    assert code == 1 and "the header contains ','" in out


def test_ragged_row_names_its_line(tmp_path):
    path = pairs_file(tmp_path, [*good_rows(3), "too,many,fields,here"])
    code, out = inspect(path, cwd=tmp_path)
    assert code == 1 and f"{path}, row 5: cannot be parsed with delimiter ','" in out and "line 5" in out


def test_unbalanced_quote_names_its_spreadsheet_row(tmp_path):
    # header row 1, good rows 2-4, a blank line 5 (counted), the opening quote on row 6
    path = pairs_file(tmp_path, [*good_rows(3), "", '"an open quote,never closed,1', *good_rows(2, 3)])
    code, out = inspect(path, cwd=tmp_path)
    assert code == 1 and f"{path}, row 6: cannot be parsed with delimiter ','" in out, out
    assert "is never closed (an unbalanced '\"')" in out


def odd_paths(tmp_path):
    """(path, what sttune must say it is) for paths that are not regular files or folders."""
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.csv"
    loop.symlink_to(tmp_path / "loop2.csv")
    (tmp_path / "loop2.csv").symlink_to(loop)
    broken = tmp_path / "broken.csv"
    broken.symlink_to(tmp_path / "gone.csv")
    cases = [(fifo, "not a regular file: a named pipe (FIFO)"), (loop, "not a regular file: a symbolic link loop"),
             (broken, f"not a regular file: a broken symbolic link to {tmp_path / 'gone.csv'}")]
    if os.path.exists("/dev/zero"):
        cases.append((Path("/dev/zero"), "not a regular file: a character device"))
    return cases


def test_paths_that_are_not_regular_files_are_named_without_reading_them(tmp_path):
    # A FIFO with no writer would block a reader for ever: the timeout is the test that none opens it.
    from sttune_helpers.config import DataConfig
    from sttune_helpers.data import DataError
    from sttune_helpers.data.prepare import load_data

    for path, what in odd_paths(tmp_path):
        code, out = inspect(path, cwd=tmp_path)
        assert code == 1 and f"{path}: {what}; expected a data file" in out, out
        assert "Traceback" not in out
        with pytest.raises(DataError, match=re.escape(f"{path}: {what}")):
            load_data(DataConfig(source=str(path)))  # the data stage's reader says the same
    # inside a folder of split files: the FIFO is named when its split is read
    folder = tmp_path / "splits"
    folder.mkdir()
    os.mkfifo(folder / "train.csv")
    pairs_file(folder, good_rows(), name="test.csv")
    code, out = inspect(folder, cwd=tmp_path)
    assert code == 1 and f"{folder / 'train.csv'}: not a regular file: a named pipe (FIFO)" in out, out


def test_a_fifo_as_data_source_stops_a_run_before_it_starts(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    result = sttune("run", "--preset", "smoke", "--name", "f", "-p", f"data.source={fifo}", cwd=tmp_path,
                    timeout=QUICK_S)
    assert result.returncode == 2 and f"{fifo}: not a regular file: a named pipe (FIFO)" in result.stderr
    assert_no_run_directory(tmp_path)


def test_beir_folder_missing_a_part_names_it(tmp_path):
    from sttune_helpers.data import DataError, resolve_source

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text((SCIFACT / "queries.jsonl").read_text())
    (folder / "qrels" / "test.tsv").write_text((SCIFACT / "qrels" / "test.tsv").read_text())
    code, out = inspect(folder, cwd=tmp_path)
    assert code == 1 and f"{folder}: a directory that is not a BEIR folder: corpus.jsonl is missing" in out, out
    (folder / "corpus.jsonl").write_text((SCIFACT / "corpus.jsonl").read_text())
    (folder / "queries.jsonl").unlink()
    (folder / "queries.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(DataError, match=re.escape(f"queries.jsonl is a broken symbolic link to {tmp_path}")):
        resolve_source(str(folder))


def test_invalid_and_mixed_encodings(tmp_path):
    # UTF-8 lines (with an accent) and then a line saved as Latin-1: the first non-UTF-8 line is named.
    mixed = tmp_path / "mixed.csv"
    utf8_part = "sentence1,sentence2,score\ncafé au lait,a coffee,4\n".encode("utf-8")
    mixed.write_bytes(utf8_part + "crème brûlée,a dessert,3\n".encode("latin-1"))
    code, out = inspect(mixed, cwd=tmp_path)
    assert code == 1
    offset = len(utf8_part) + len("cr")  # the Latin-1 è
    assert (f"{mixed}, row 3: bytes that are not UTF-8 (0xe8 at byte {offset}; perhaps Latin-1 or Windows-1252"
            in out)
    assert "save the file as UTF-8" in out
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("sentence1,sentence2,score\na,b,1\n".encode("utf-16"))
    code, out = inspect(utf16, cwd=tmp_path)
    assert code == 1 and f"{utf16}, row 1: bytes that are not UTF-8" in out and "it is UTF-16" in out
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"sentence1,sentence2,score\na,b,1\nc\x00,d,2\n")
    code, out = inspect(nul, cwd=tmp_path)
    assert code == 1 and f"{nul}, row 3: NUL bytes in a text file" in out
    jsonl = tmp_path / "pairs.jsonl"  # JSONL goes through the same check
    jsonl.write_bytes(b'{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "caf\xe9", "sentence2": "b", '
                      b'"score": 2}\n')
    code, out = inspect(jsonl, cwd=tmp_path)
    assert code == 1 and f"{jsonl}, row 2: bytes that are not UTF-8" in out


def test_nan_empty_infinite_and_out_of_range_scores(tmp_path):
    path = pairs_file(tmp_path, [*good_rows(4), "x1,y1,NaN", "x2,y2,", "x3,y3,inf", "x4,y4,7", "x5,y5,-1"])
    code, out = inspect(path, cwd=tmp_path)
    assert code == 1
    assert f"{path}, row 6, column 'score': expected a number, got 'NaN'" in out
    assert f"{path}, row 7, column 'score': empty score: expected a number" in out
    assert f"{path}, row 8, column 'score': expected a finite number, got 'inf'" in out
    # The scale cannot be detected: the rows of the lowest and the highest score are named.
    assert (f"scores range from -1 ({path}, row 10, column 'score') to 7 ({path}, row 9, column 'score'), which fits "
            "none of the known scales") in out and "data.score_range" in out


def test_labels_outside_the_declared_set(tmp_path):
    nli = tmp_path / "nli.tsv"
    nli.write_text(SNLI.read_text().replace("\tneutral\n", "\tmaybe\n", 1))
    code, out = inspect(nli, "--labels", "entailment,neutral,contradiction", cwd=tmp_path)
    assert code == 1
    assert "column 'label': label 'maybe' is outside the declared set {entailment, neutral, contradiction}" in out
    binary = pairs_file(tmp_path, ["a,b,1", "c,d,0", "e,f,2", "g,h,yes"], name="binary.csv",
                        header="sentence1,sentence2,label")
    code, out = inspect(binary, "--shape", "pair_binary", cwd=tmp_path)
    assert code == 1
    assert f"{binary}, row 4, column 'label': label '2' is outside the declared set {{0, 1}}" in out
    assert f"{binary}, row 5, column 'label': label 'yes' is outside the declared set {{0, 1}}" in out


def test_rows_of_only_whitespace_are_named_and_blank_lines_do_not_shift_row_numbers(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\n" + "\n".join(good_rows(3)) + "\n\n   ,\t,  \n" + good_rows(1, 9)[0]
                    + "\n   \n")
    code, out = inspect(path, cwd=tmp_path)
    assert code == 1
    # Line 5 is blank (dropped, but counted); line 6 holds only whitespace; line 8 only spaces.
    for column in ("sentence1", "sentence2"):
        assert f"{path}, row 6, column '{column}': empty text (or only whitespace)" in out
        assert f"{path}, row 8, column '{column}': empty text (or only whitespace)" in out
    assert f"{path}, row 6, column 'score': empty score: expected a number" in out
    assert "row 5," not in out and "row 7," not in out


def test_qrels_that_reference_missing_documents_and_queries(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (folder / name).write_text((SCIFACT / name).read_text())
    (folder / "qrels" / "train.tsv").write_text((SCIFACT / "qrels" / "train.tsv").read_text())
    test = (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()
    test[2] = f"{test[1].split(chr(9))[0]}\tno-such-doc\t1"
    test.append("no-such-query\t" + test[1].split("\t")[1] + "\t1")
    (folder / "qrels" / "test.tsv").write_text("\n".join(test) + "\n")
    code, out = inspect(folder, cwd=tmp_path)
    assert code == 1
    qrels = folder / "qrels" / "test.tsv"
    assert f"{qrels}, row 3, column 'corpus-id': document 'no-such-doc' is not in corpus.jsonl" in out
    assert f"{qrels}, row {len(test)}, column 'query-id': query 'no-such-query' is not in queries.jsonl" in out


def test_a_one_megabyte_text_is_usable_with_a_warning(tmp_path):
    huge = "word " * 200_000  # 1,000,000 characters in one cell
    path = pairs_file(tmp_path, [*good_rows(4), f"{huge},a short sentence,3", *good_rows(26, 4)])
    assert path.stat().st_size > 1_000_000
    code, out = inspect(path, cwd=tmp_path)
    assert code == 0 and "usable: yes" in out
    assert (f"warning: 1 text(s) longer than 10,000 characters; the longest, 1,000,000 characters, is at {path}, "
            "row 6, column 'sentence1'") in out and "cut off when it is encoded" in out


def one_row_file(tmp_path):
    return pairs_file(tmp_path, ["what is a cat,a cat is a small animal"], name="one.csv", header="anchor,positive")


def all_duplicates_file(tmp_path):
    return pairs_file(tmp_path, ["the same question,the same answer"] * 20, name="dups.csv", header="anchor,positive")


def beir_with_only_test_qrels(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (folder / name).write_text((SCIFACT / name).read_text())
    return folder


@pytest.mark.parametrize("make, message", [
    (one_row_file, "data: the validation split is empty after cleaning; add data or change the split fractions"),
    (all_duplicates_file, "data: the validation split is empty after cleaning; add data or change the split "
                          "fractions"),
    (beir_with_only_test_qrels, "data: the source has test but no train split"),
], ids=["one-row", "every-row-a-duplicate", "beir-only-test-qrels"])
def test_inspect_refuses_what_the_data_stage_refuses_with_its_message(tmp_path, make, message):
    """Rows without a problem are not enough: inspect runs the data stage's cleaning and splitting,
    and says "cannot be used" with the stage's own message where the stage would stop."""
    from sttune_helpers.data import DataError
    from sttune_helpers.stages import data_prep

    source = make(tmp_path)
    code, out = inspect(source, cwd=tmp_path)
    assert code == 1 and f"cannot be used: {message}" in out and "usable: no" in out, out
    config = load_preset("default").with_overrides({"data.source": str(source)})
    with pytest.raises(DataError) as raised:
        data_prep.prepare(config)
    assert str(raised.value) == message


def test_a_good_small_file_stays_usable(tmp_path):
    path = pairs_file(tmp_path, good_rows(30))
    code, out = inspect(path, cwd=tmp_path)
    assert code == 0 and "usable: yes" in out and "cannot be used" not in out, out


# --- config, model and run-directory problems: `sttune run` fails before any kernel starts ------------


def assert_no_run_directory(tmp_path):
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.rglob("*"))


def test_config_with_unknown_keys_or_wrong_types(tmp_path):
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("seed: 1\ntrain:\n  epochz: 2\n")
    result = sttune("run", "--config", str(unknown), "--name", "u", cwd=tmp_path, timeout=QUICK_S)
    assert result.returncode == 2
    assert (f"{unknown}: unknown config key 'train.epochz' (did you mean 'train.epochs'?)" in result.stderr)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train:\n  batch_size: big\n")
    result = sttune("run", "--config", str(wrong), "--name", "w", cwd=tmp_path, timeout=QUICK_S)
    assert result.returncode == 2
    assert f"{wrong}: config key 'train.batch_size' expects an integer, got 'big' (str)" in result.stderr
    result = sttune("run", "--preset", "smoke", "--name", "o", "-p", "train.precision=fp8", cwd=tmp_path,
                    timeout=QUICK_S)
    assert result.returncode == 2 and "'train.precision' expects one of 'auto', 'bf16', 'fp16', 'fp32'" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_run_directory(tmp_path)


def test_model_path_that_does_not_exist_fails_within_seconds(tmp_path):
    missing = tmp_path / "no-such-model"
    started = time.perf_counter()
    result = sttune("run", "--preset", "smoke", "--name", "m", "-p", f"model.name={missing}", cwd=tmp_path,
                    timeout=QUICK_S)
    seconds = time.perf_counter() - started
    assert result.returncode == 2
    assert (f"model {str(missing)!r} not found: tried the local path {str(missing)!r} (it does not exist)"
            in result.stderr)
    assert seconds < 30, seconds  # no kernel start, no hub probe: python start-up and the import of the cli
    hub = sttune("run", "--preset", "smoke", "--name", "h", "-p", "model.name=some-org/not-cached", cwd=tmp_path,
                 timeout=QUICK_S)  # HF_HUB_OFFLINE=1 in the tests' environment
    assert hub.returncode == 2 and "not in the local cache, and HF_HUB_OFFLINE is set" in hub.stderr
    assert_no_run_directory(tmp_path)


def test_refusals_do_not_import_the_training_libraries(tmp_path):
    # A refusal costs python's start-up, not the seconds of importing torch, transformers and peft.
    probe = ("import sys\nfrom sttune_helpers.cli import main\n"
             "code = main(['run', '--preset', 'smoke', '--name', 'bad/name'])\n"
             "print(code, sorted({'torch', 'transformers', 'peft', 'sentence_transformers'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=sttune_env(), capture_output=True,
                            text=True, timeout=QUICK_S)
    assert result.stdout.strip() == "2 []", result.stdout + result.stderr
    assert "run name 'bad/name' is not allowed" in result.stderr


def test_data_source_that_does_not_exist_fails_before_the_run_starts(tmp_path):
    result = sttune("run", "--preset", "smoke", "--name", "d", "-p", "data.source=nowhere.csv", cwd=tmp_path,
                    timeout=QUICK_S)
    assert result.returncode == 2 and "nowhere.csv: data source does not exist (data.source)" in result.stderr
    assert_no_run_directory(tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", "/etc", ".hidden"])
def test_run_names_with_slashes_or_dots_are_refused(tmp_path, name):
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = sttune("run", "--preset", "smoke", "--name", name, cwd=workdir, timeout=QUICK_S)
    assert result.returncode == 2 and f"run name {name!r} is not allowed" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # nothing created, inside or outside


def test_existing_run_is_refused_and_left_as_it_was(tmp_path):
    run = tmp_path / "runs" / "taken"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "manifest.json").write_text('{"stages": {}}\n')
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = sttune("run", "--preset", "smoke", "--name", "taken", cwd=tmp_path, timeout=QUICK_S)
    assert result.returncode == 2
    assert "run 'taken' already exists in runs: pass --overwrite to replace it" in result.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_runs_directory_that_cannot_be_written(tmp_path):
    # Tests may run as root, whom permissions do not stop: a runs directory under a regular file
    # cannot be created by anyone.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    result = sttune("run", "--preset", "smoke", "--name", "r", "--runs-dir", str(blocker / "runs"), cwd=tmp_path,
                    timeout=QUICK_S)
    assert result.returncode == 2
    assert f"cannot write to the run directory {blocker / 'runs' / 'r'}: Not a directory" in result.stderr
    assert blocker.read_text() == "a file"
    if os.geteuid() != 0:  # a read-only folder, where permissions apply
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o555)
        result = sttune("run", "--preset", "smoke", "--name", "r", "--runs-dir", str(readonly), cwd=tmp_path,
                        timeout=QUICK_S)
        assert result.returncode == 2 and "cannot write to the run directory" in result.stderr
        assert "Permission denied" in result.stderr and not list(readonly.iterdir())


def no_space_left(monkeypatch):
    """Every fsync fails as on a full disk: the temporary file was (partly) written, the rename never happens."""
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def test_full_runs_directory_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    from sttune_helpers.cli import main as sttune_main

    run_dir = tmp_path / "runs" / "full"
    no_space_left(monkeypatch)
    assert sttune_main(["run", "--preset", "smoke", "--name", "full", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"sttune: error: [Errno 28] cannot write {run_dir / 'config.yaml'}: No space left on device" in err
    assert "nothing was replaced" in err and "Traceback" not in err
    assert list(run_dir.iterdir()) == []  # no config.yaml, no temporary beside it

    # A full disk while a stage records itself: the manifest stays as it was, whole.
    monkeypatch.undo()
    run = rundir.RunDir(tmp_path / "runs" / "other")
    run.root.mkdir()
    run.save_config(load_preset("smoke"))
    run.start_stage("data_prep")
    before = run.manifest_path.read_bytes()
    no_space_left(monkeypatch)
    with pytest.raises(OSError, match=r"cannot write .*manifest.json: No space left on device") as raised:
        run.fail_stage("data_prep", "DataError: a bad row")
    assert raised.value.errno == errno.ENOSPC
    assert run.manifest_path.read_bytes() == before
    assert sorted(p.name for p in run.root.iterdir()) == ["config.yaml", "manifest.json"]
    # A model folder that does not fit: no half-saved folder stays, the old one (if any) is kept.
    with pytest.raises(OSError, match=r"cannot write .*model: No space left on device"):
        with atomic_directory(run.model_dir) as tmp:
            (tmp / "weights.bin").write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert not run.model_dir.exists() and sorted(p.name for p in run.root.iterdir()) == ["config.yaml",
                                                                                         "manifest.json"]


# --- through the data stage of `sttune run`: the run directory's side ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("only", [[], ["--only", "data_prep"]], ids=["whole-run", "only-data-prep"])
def test_bad_rows_stop_the_data_stage_of_a_run_with_nothing_written(tmp_path, only):
    """--overwrite (also with --only data_prep) replaces an existing run; the data stage then stops on
    the bad rows, names each, marks itself failed with the reason, and leaves no split and no later
    stage's artifact."""
    run = tmp_path / "runs" / "taken"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "stale-model-file").write_text("from the old run")
    bad = pairs_file(tmp_path, [*good_rows(20), "x1,y1,NaN", "   ,y2,3"])
    refused = sttune("run", "--name", "taken", "--overwrite", "--from", "training", cwd=tmp_path, timeout=QUICK_S)
    assert refused.returncode == 2 and "--overwrite starts the run again from 'data_prep'" in refused.stderr
    assert (run / "stale-model-file").exists()
    result = sttune("run", "--preset", "smoke", "--name", "taken", "--overwrite", *only, "-p", f"data.source={bad}",
                    cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "stage 'data_prep' failed in cell" in out
    assert f"{bad}, row 22, column 'score': expected a number, got 'NaN'" in out
    assert f"{bad}, row 23, column 'sentence1': empty text (or only whitespace)" in out
    assert not (run / "stale-model-file").exists()  # --overwrite replaced the old run
    manifest = json.loads((run / "manifest.json").read_text())
    entry = manifest["stages"]["data_prep"]
    assert entry["status"] == "failed" and "row 22, column 'score'" in entry["error"]
    assert [manifest["stages"][s]["status"] for s in STAGES[1:]] == ["pending"] * 4
    assert not (run / "data").exists() and not (run / "plan.json").exists() and not (run / "model").exists()
    assert (run / "notebooks" / "01_data_prep.ipynb").is_file()  # the executed notebook, to read the error in
    assert not [p for p in run.rglob(".*") if p.name.endswith((".tmp", ".old"))]
