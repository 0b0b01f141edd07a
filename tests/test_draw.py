"""``cnnspec draw``: golden .dot files, a well-formed SVG naming every layer, PNG, the self-contained HTML
page opened in a real headless browser, and the one line said when the optional extra is missing.

Regenerate the .dot goldens after an intended change with ``CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_draw.py``.
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.draw.diagram import diagram, op_detail

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "draw"
UPDATE = os.environ.get("CNNSPEC_UPDATE_GOLDEN") == "1"
DOT_CASES = {"digits": [], "resnet18": [], "resnet18-collapsed": ["--collapse"], "mobilenet-v2-collapsed": ["--collapse"],
             "mobilenet-v3-small-collapsed": ["--collapse"]}

try:
    import grandalf  # noqa: F401
    HAVE_GRANDALF = True
except ImportError:
    HAVE_GRANDALF = False
needs_grandalf = pytest.mark.skipif(not HAVE_GRANDALF, reason="needs grandalf: pip install 'cnnspec[draw]'")


def _spec(case: str) -> str:
    return f"specs/{case.removesuffix('-collapsed')}.yaml"


@pytest.mark.parametrize("case", DOT_CASES)
def test_dot_golden(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "g.dot"
    assert main(["draw", _spec(case), "-o", str(out), *DOT_CASES[case]]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    golden = GOLDEN / f"{case}.dot"
    if UPDATE or not golden.exists():
        golden.write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{golden.name} did not exist; written now, review and commit it")
    assert out.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8")


def test_dot_shows_clusters_skips_and_concat_branches():
    text = (GOLDEN / "resnet18.dot").read_text(encoding="utf-8")
    assert 'subgraph "cluster_layer1.0" {' in text and 'label="layer1.0: basic"' in text
    assert '"maxpool" -> "layer1.0.add_1" [color="#e69138", style=dashed];' in text  # the identity skip
    graph = cnnspec.loads("cnnspec: 1\nname: c\ninput: [1, 8, 8]\nlayers:\n  - {conv2d: {filters: 2, kernel: 1}, name: a}\n"
                          "  - {conv2d: {filters: 2, kernel: 3, padding: 1}, name: b, in: input}\n"
                          "  - {concat: null, in: [a, b], name: j}\n").graph
    arrows = {(a.src, a.dst): a.style for a in diagram(graph).arrows}
    assert arrows == {("input", "a"): "flow", ("input", "b"): "branch", ("a", "j"): "branch", ("b", "j"): "branch"}


def test_labels_show_the_arguments_that_matter():
    graph = cnnspec.load(ROOT / "specs/resnet18.yaml").graph
    assert op_detail(graph.node("conv1")) == "conv2d 64, kernel 7, stride 2, padding 3, bias false"
    assert op_detail(graph.node("maxpool")) == "maxpool2d 3, stride 2, padding 1"
    assert op_detail(graph.node("bn1")) == "batchnorm"
    digits = cnnspec.load(ROOT / "specs/digits.yaml").graph
    assert op_detail(digits.node("pool")) == "maxpool2d 2"  # stride = kernel: not said again
    assert op_detail(digits.node("fc1")) == "dense 128 +relu"
    assert op_detail(digits.node("drop1")) == "dropout 0.25"


def _svg(spec, tmp_path, *extra):
    out = tmp_path / "g.svg"
    assert main(["draw", str(ROOT / spec), "-o", str(out), *extra]) == 0
    return ET.parse(out).getroot()  # well-formed, or this raises


@needs_grandalf
@pytest.mark.parametrize("spec", ["specs/resnet50.yaml", "specs/mobilenet-v2.yaml", "specs/lenet-5.yaml"])
def test_svg_is_well_formed_and_names_every_layer(spec, tmp_path):
    root = _svg(spec, tmp_path)
    ns = {"s": "http://www.w3.org/2000/svg"}
    names = {g.get("data-name") for g in root.iterfind(".//s:g[@class='layer']", ns)}
    graph = cnnspec.load(ROOT / spec).graph
    assert names == {"input"} | {n.name for n in graph.nodes}
    texts = {t.text for t in root.iterfind(".//s:text", ns)}
    assert {n.name for n in graph.nodes} <= texts
    edges = root.findall(".//s:polyline", ns)
    assert len(edges) == sum(len(n.inputs) for n in graph.nodes)
    # every box lies inside the drawing, and no two boxes overlap
    boxes = [[float(r.get(k)) for k in ("x", "y", "width", "height")]
             for r in root.iterfind(".//s:g[@class='layer']/s:rect", ns)]
    width, height = float(root.get("width")), float(root.get("height"))
    assert all(0 <= x and x + w <= width and 0 <= y and y + h <= height for x, y, w, h in boxes)
    for i, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y


@needs_grandalf
def test_svg_clusters_and_collapse(tmp_path):
    ns = {"s": "http://www.w3.org/2000/svg"}
    root = _svg("specs/resnet18.yaml", tmp_path)
    clusters = [g.get("data-name") for g in root.iterfind(".//s:g[@class='cluster']", ns)]
    assert clusters == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    collapsed = _svg("specs/resnet18.yaml", tmp_path, "--collapse")
    names = [g.get("data-name") for g in collapsed.iterfind(".//s:g[@class='layer']", ns)]
    assert names == ["input", "conv1", "bn1", "relu", "maxpool"] + clusters + ["avgpool", "fc"]
    assert not collapsed.findall(".//s:g[@class='cluster']", ns)


@needs_grandalf
def test_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "g.png"
    assert main(["draw", str(ROOT / "specs/lenet-5.yaml"), "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def _page(tmp_path, spec="specs/resnet18.yaml"):
    out = tmp_path / "page.html"
    assert main(["draw", str(ROOT / spec), "-o", str(out)]) == 0
    return out


@needs_grandalf
def test_html_is_self_contained(tmp_path):
    text = _page(tmp_path).read_text(encoding="utf-8")
    # nothing to fetch: no external script, style, image or font (the SVG namespace is a name, not a fetch)
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<svg" in text and "<table>" in text and 'id="figures"' in text
    assert 'data-name="layer4.1.conv2"' in text


def _browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@needs_grandalf
@pytest.mark.skipif(not _browser(), reason="no headless browser here: 'apt-get install -y chromium' (make test does "
                                           "it where it runs as root on Debian)")
def test_html_in_a_headless_browser_shows_a_layers_numbers(tmp_path):
    """The page's own click handler, run by a real browser: ``#layer=NAME`` clicks that layer's box on load,
    and the DOM after the scripts ran must show its numbers in the panel and mark its box and table row."""
    page = _page(tmp_path)
    result = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                             page.as_uri() + "#layer=layer2.0.conv1"],
                            capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert '<div id="info" data-layer="layer2.0.conv1">' in dom, result.stderr[-2000:]
    panel = dom[dom.index('<div id="info"'):]
    panel = panel[:panel.index("</div>")]
    for expected in ("conv2d 128, kernel 3, stride 2, padding 1, bias false", "[128, 28, 28]", "51 x 51", "8 x 8",
                     "73,728 (0.6%)", "57,802,752 (3.2%)", "115,605,504"):
        assert f"<dd>{expected}</dd>" in panel, expected
    assert 'class="layer selected" data-name="layer2.0.conv1"' in dom
    assert '<tr data-name="layer2.0.conv1" class="selected">' in dom


def test_unknown_suffix_and_invalid_spec(tmp_path, capsys):
    assert main(["draw", str(ROOT / "specs/lenet-5.yaml"), "-o", str(tmp_path / "g.jpg")]) == 2
    assert "use one of .dot, .svg, .png, .html" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("cnnspec: 1\nname: bad\ninput: [1, 8, 8]\nlayers:\n  - conv2d: {filters: 4, kernel: 9}\n")
    assert main(["draw", str(bad), "-o", str(tmp_path / "g.dot")]) == 1
    assert "kernel 9 does not fit" in capsys.readouterr().err and not (tmp_path / "g.dot").exists()


def test_without_the_extra_one_line_says_what_to_install(tmp_path):
    """grandalf hidden from the import system, as on a machine without ``cnnspec[draw]``; .dot still works."""
    code = ("import sys; sys.modules['grandalf'] = None; from cnnspec.cli import main; "
            f"sys.exit(main(['draw', {str(ROOT / 'specs/lenet-5.yaml')!r}, '-o', sys.argv[1]]))")
    run = [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    svg = subprocess.run(run + [str(tmp_path / "g.svg")], capture_output=True, text=True, env=env)
    assert svg.returncode == 2 and svg.stdout == ""
    assert svg.stderr.strip().splitlines() == [
        "cnnspec: error: drawing .svg, .png and .html needs grandalf: pip install 'cnnspec[draw]' (.dot needs nothing)"]
    dot = subprocess.run(run + [str(tmp_path / "g.dot")], capture_output=True, text=True, env=env)
    assert dot.returncode == 0 and (tmp_path / "g.dot").exists()


PROBE = """<script>
const side = document.getElementById('table').getBoundingClientRect();
const header = [...document.querySelectorAll('th')].find(th => th.textContent === 'Output shape').getBoundingClientRect();
const cells = [...document.querySelectorAll('td.wrap')].map(td => td.getBoundingClientRect().width);
document.body.dataset.probe = JSON.stringify({side: [side.left, side.right], shape: [header.left, header.right],
  width: innerWidth, height: innerHeight, widest_inputs: Math.max(0, ...cells)});
</script></body>"""


@needs_grandalf
@pytest.mark.skipif(not _browser(), reason="no headless browser here: 'apt-get install -y chromium' (make test does "
                                           "it where it runs as root on Debian)")
@pytest.mark.parametrize("spec", ["specs/densenet121.yaml", "specs/googlenet.yaml"])
def test_html_output_shape_stays_in_view_at_1400x1000(tmp_path, spec):
    """Issue 22: in a 1400x1000 window the table's Output shape column is inside the visible table (long
    layer names, a concat's many inputs): measured by the browser's own layout."""
    page = _page(tmp_path, spec)
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE, 1), encoding="utf-8")
    result = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert found, result.stderr[-2000:]
    m = json.loads(html.unescape(found.group(1)))
    assert m["width"] == 1400  # (the height is the window's less headless chromium's own bars)
    left, right = m["side"]
    assert left <= m["shape"][0] and m["shape"][1] <= right - 16, m  # in view, a scroll bar's width to spare
    assert 0 < m["widest_inputs"] <= 16 * 12 * 1.1  # the inputs wrap at 16em (12 px monospace) instead
