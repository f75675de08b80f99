"""The console (engage/console.py): rich output only on a terminal."""

from __future__ import annotations


def test_progress_bars_only_on_a_terminal(monkeypatch, capsys):
    import engage.console

    with engage.console.progress_bars() as bars:  # pytest's stderr is no terminal
        assert not bars.drawn and bars.counter("folds") is None
        bars("folds", 1, 5)  # nothing happens
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(engage.console, "is_terminal", lambda stream: True)
    with engage.console.progress_bars() as bars:
        count = bars.counter("folds")
        assert bars.drawn and count is not None
        for k in range(6):
            count(k, 5)
