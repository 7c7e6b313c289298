"""The terminal of a run: our lines and library errors on it; library warnings, info and prints in the
run's log file; `--verbose` puts the libraries back on the terminal."""

import io
import logging
import os
import warnings

import pytest

from distill import console


@pytest.fixture
def terminal(monkeypatch):
    """console.CONSOLE writing into a buffer; logging, warnings and the environment restored afterwards."""
    # An earlier CLI test's captureWarnings(True) outlives pytest's per-test warnings hook and would make
    # setup()'s call a no-op: start from logging's uncaptured state.
    logging.captureWarnings(False)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, dict(os.environ), list(warnings.filters), dict(console._settings))
    buf = io.StringIO()
    monkeypatch.setattr(console.CONSOLE, "file", buf)
    yield buf
    root.handlers[:], root.level = saved[0], saved[1]
    os.environ.clear()
    os.environ.update(saved[2])
    warnings.filters[:] = saved[3]
    console._settings.update(saved[4])
    logging.captureWarnings(False)


def _emit():
    logging.getLogger("distill.test").info("ours: stage started")
    logging.getLogger("transformers.modeling_utils").warning("lib: some weights were not initialized")
    logging.getLogger("datasets.builder").error("lib: could not read the cache")
    warnings.warn("lib: a deprecated argument", FutureWarning, stacklevel=1)


def test_library_warnings_go_to_the_log_file_and_ours_to_the_terminal(terminal, tmp_path):
    console.setup(verbose=False)
    log = tmp_path / "logs" / "stage.log"
    with console.log_file(log):
        _emit()
    shown = terminal.getvalue()
    assert "ours: stage started" in shown and "lib: could not read the cache" in shown
    assert "some weights" not in shown and "deprecated argument" not in shown
    written = log.read_text()
    for text in ("ours: stage started", "some weights were not initialized", "could not read the cache", "deprecated argument"):
        assert text in written
    assert os.environ["TQDM_DISABLE"] == "1" and os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"


def test_verbose_shows_the_libraries_on_the_terminal(terminal, tmp_path):
    console.setup(verbose=True)
    with console.log_file(tmp_path / "stage.log"):
        _emit()
    shown = terminal.getvalue()
    assert "some weights were not initialized" in shown and "could not read the cache" in shown


def test_under_a_stage_display_our_info_lines_go_to_the_file_only(terminal, tmp_path):
    from distill.progress import Line

    console.setup(verbose=False)
    log = tmp_path / "stage.log"
    line = Line(name="02_traces", unit="shards", done=3, total=3, rows=120, state="done")
    with console.log_file(log), console.stage_display("generate", lambda: [line]):
        logging.getLogger("distill.generate").info("shard 2 chunk 0: 40 rows")
        logging.getLogger("distill.generate").warning("took over an abandoned claim")
    shown = terminal.getvalue()
    assert "shard 2 chunk 0" not in shown and "took over an abandoned claim" in shown
    assert "02_traces" in shown and "3 shards" in shown and "120 rows" in shown
    assert "shard 2 chunk 0" in log.read_text()
