"""index.html: written by render, well-formed, complete; sorted and filtered in a browser."""

import html.parser
import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_bench_report import _folder
from test_bench_tuning import lanes

from bench.known import known
from bench.report import page
from bench.report.render import render

CHROMIUM = Path("/usr/bin/chromium")
# problem -> optimizer -> (learning rate, median steps to target; -1: never)
COSTS = {
    "rosenbrock_2d": {
        "adam": (0.01, 40),
        "sgd": (0.001, -1),
        "lion": (0.1, 20),
        "my_rule": (1, 60),
    },
    "quadratic_20d_cond1e1": {"adam": (0.1, 30), "sgd": (1.0, 10), "lion": (0.01, -1)},
    "my_problem": {"adam": (0.001, 5), "my_rule": (0.1, 9)},
}
VOID = {"meta", "img", "br", "hr", "input", "link"}


def _runs() -> pd.DataFrame:
    frames = []
    for problem, pairs in COSTS.items():
        for optimizer, (lr, steps) in pairs.items():
            final = 1e-6 if steps >= 0 else 0.5
            frames.append(lanes(problem, optimizer, lr, [final] * 2, [steps] * 2, role="tune"))
            eval_steps = steps + np.arange(5) % 3 if steps >= 0 else [-1] * 5
            frames.append(lanes(problem, optimizer, lr, [final] * 5, eval_steps, role="eval"))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = _folder(tmp_path_factory.mktemp("results"), _runs())
    render(folder, io.StringIO(), "steps", known=known())
    return folder


class Tree(html.parser.HTMLParser):
    """Checks that every element is closed in order; collects elements with their
    attributes and text, and the rows of every table (id -> [(attributes, cells)])."""

    def __init__(self, text: str):
        super().__init__()
        self.open, self.elements, self.tables, self.table = [], [], {}, None
        self.feed(text)
        self.close()
        assert not self.open, f"unclosed: {self.open}"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag in VOID:
            return
        self.open.append(tag)
        if tag == "table":
            self.table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self.table is not None and self.open[-2] == "tbody":
            self.table.append((attrs, []))
        elif tag == "td":
            self.table[-1][1].append("")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.open and self.open[-1] == "td":
            self.table[-1][1][-1] += data


@pytest.mark.slow
def test_render_writes_a_well_formed_page_of_every_pair(folder):
    text = (folder / "index.html").read_text()
    tree = Tree(text)
    names = {o for pairs in COSTS.values() for o in pairs} | set(COSTS)
    assert all(name in text for name in names)
    # The overall ranking as TABLES.md ranks, every optimizer with its family.
    ranking = pd.read_csv(folder / "ranking.csv")
    rows = tree.tables["overall"]
    assert [cells[1] for _, cells in rows] == ranking["optimizer"].tolist()
    assert {cells[1]: a["data-family"] for a, cells in rows} == {
        "adam": "adam",
        "sgd": "sgd",
        "lion": "lion",
        "my_rule": "",
    }
    first = ranking.iloc[0]
    assert first.rank_low == 1 < first.rank_high  # adam is second on some resamples
    assert rows[0][1][3:6] == [
        str(first.group),
        f"{first.score:.3f} [{first.score_low:.3f}, {first.score_high:.3f}]",
        f"1-{first.rank_high}",
    ]
    # Every rule but the reference (the first ranked: no adamw here) head to head against
    # it; the robustness rows are no optimizer's, and no family filter hides them.
    assert [c[0] for _, c in tree.tables["head-to-head"]] == ranking["optimizer"][1:].tolist()
    assert all("data-family" not in a for a, _ in tree.tables["robustness"])
    # The runtime views (groups: the built-in problems and my_problem), then one table and
    # one tagged section per problem.
    runtime = {"ert", "win-rate", "groups", "informative"}
    assert set(tree.tables) == {
        "overall",
        "head-to-head",
        "robustness",
        *runtime,
        *(f"p-{p}" for p in COSTS),
    }
    sections = [a["data-tags"] for tag, a in tree.elements if tag == "section"]
    assert sections == ["", "convex", "nonconvex"]  # my_problem, quadratic, rosenbrock
    assert [c[1] for _, c in tree.tables["p-rosenbrock_2d"]] == ["lion", "adam", "my_rule", "sgd"]
    # Every figure drawn is on the page, by a link relative to the folder.
    pngs = {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    shown = {a["src"] for tag, a in tree.elements if tag == "img"}
    assert "convergence.png" in pngs and shown == pngs
    links = {a["href"] for tag, a in tree.elements if tag == "a"}
    assert all((folder / link).is_file() for link in links)
    assert "http" not in text and "<script src" not in text and "<link" not in text


def test_figures_belong_to_the_problem_with_the_longest_matching_name():
    figures = ["plots/convergence_x.png", "plots/convergence_y_x.png", "convergence.png"]
    assert page._figures_of(["x", "y_x"], figures) == {
        "x": ["plots/convergence_x.png"],
        "y_x": ["plots/convergence_y_x.png"],
    }


def _browse(folder: Path, fragment: str) -> Tree:
    """The page's DOM after headless Chromium ran its script with the URL hash `fragment`."""
    url = (folder / "index.html").as_uri() + "#" + fragment
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return Tree(done.stdout)


def _column(tree: Tree, i: int) -> list[str]:
    return [cells[i] for _, cells in tree.tables["p-rosenbrock_2d"]]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_a_click_on_a_header_sorts_its_table_and_the_menus_filter(folder):
    # rosenbrock_2d's median steps to target (column 4): lion 21, adam 41, my_rule 61,
    # sgd never; its learning rates (column 2) in another order.
    cost, lr = 4, 2
    down = _browse(folder, f"click=p-rosenbrock_2d:{cost}&click=p-rosenbrock_2d:{cost}")
    assert [v.split(" ")[0] for v in _column(down, cost)] == ["61", "41", "21", "never"]
    up = _browse(folder, f"click=p-rosenbrock_2d:{lr}&family=adam&tag=convex")
    assert _column(up, lr) == ["0.001", "0.01", "0.1", "1"]
    hidden = {c[1] for a, c in up.tables["overall"] if "hidden" in a.get("class", "")}
    assert hidden == {"sgd", "lion", "my_rule"}
    shown = [a["data-tags"] for tag, a in up.elements if tag == "section"]
    classes = [a.get("class", "") for tag, a in up.elements if tag == "section"]
    assert [t for t, c in zip(shown, classes, strict=True) if "hidden" not in c] == ["convex"]


@pytest.mark.slow
def test_a_problems_own_metrics_are_on_the_page_as_in_the_tables(tmp_path):
    # The model families' held-out metrics (accuracy, loss, perplexity, MSE) were in
    # TABLES.md only.
    runs = _runs()
    on_mine = (runs["problem"] == "my_problem").to_numpy()
    runs["test_accuracy"] = np.where(on_mine, 0.875, np.nan)
    folder = _folder(tmp_path, runs)
    render(folder, io.StringIO(), "steps", known=known())
    tree = Tree((folder / "index.html").read_text())
    header = (folder / "index.html").read_text().split('id="p-my_problem"')[1].split("</thead>")[0]
    assert "test accuracy" in header
    assert all(cells[-1] == "0.875" for _, cells in tree.tables["p-my_problem"])
    other = (folder / "index.html").read_text().split('id="p-rosenbrock_2d"')[1]
    assert "test accuracy" not in other.split("</thead>")[0]
