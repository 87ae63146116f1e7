from textlstm.reports import markdown_table, plot_curves


def test_plot_curves_writes_a_png(tmp_path):
    history = [{"epoch": 0, "perplexity": 300.0, "val_perplexity": 250.0},
               {"epoch": 1, "perplexity": 200.0, "val_perplexity": 180.0}]
    path = tmp_path / "curves.png"
    plot_curves(history, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_markdown_table():
    table = markdown_table([{"model": "small", "ppl": 112.346}], ["model", "ppl"])
    assert table.splitlines() == ["| model | ppl |", "|---|---|", "| small | 112.35 |"]
