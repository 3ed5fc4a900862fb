"""Both HTML reports in headless Chromium: no console error, no network request, every claim
statement as MathML, plots in the DOM; the screenshots are kept as artefacts
(``$TVGRAD_ARTIFACTS``, default ``build/test-artifacts``)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tvgrad.theory.campaign import verify
from tvgrad.theory.claims import CLAIMS
from tvgrad.theory.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(apt-get install chromium; .ci/run does)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--proxy-server=127.0.0.1:9", "--enable-logging=stderr",
         "--v=1"]
ARTIFACTS = Path(os.environ.get("TVGRAD_ARTIFACTS", "build/test-artifacts"))


def _open(html: Path, tmp_path: Path, name: str) -> tuple[str, str]:
    """(DOM after rendering, Chromium's log); the screenshot goes to the artefacts."""
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    r = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000",
                        html.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", html.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120)
    return dom.stdout, r.stderr + dom.stderr


def _clean(log: str) -> None:
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Refused to" in ln
               or "Content Security Policy" in ln]
    assert not console, console  # no script error, nothing refused by the page's CSP
    # no request from the page: Chromium's own services (sign-in, component updates) aside,
    # which it contacts whatever page it shows
    own = re.compile(r"https?://[^/]*(google|gstatic|gvt1|googleapis|chrome)[^/]*/")
    net = [ln for ln in log.splitlines() if "NotifyBeforeURLRequest" in ln
           and re.search(r"(https?|ftp|wss?)://", ln) and not own.search(ln)]
    assert not net, net


def test_theory_report_in_chromium(tmp_path):
    out = tmp_path / "r"
    verify(profile="ci", out=out, max_examples=3, audit=False)
    html = write_report(out)
    src = html.read_text()
    # nothing to fetch: no src/href/url() pointing anywhere (namespaces are names, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|url\(\s*["']?(https?:|//)""", src)
    dom, log = _open(html, tmp_path, "theory")
    _clean(log)
    cells = re.findall(r'<td class="statement">(.*?)</td>', dom, re.S)
    assert len(cells) == len(CLAIMS) and all(c.lstrip().startswith("<math") for c in cells)
    assert dom.count("<svg") == src.count("<svg") >= 4
    assert "<math" in dom.split('id="theorem"')[1]  # bound.md's math rendered too
    assert "$" not in dom.split('id="theorem"')[1].split("</div>")[0]


def test_empirical_report_in_chromium(tmp_path):
    from tvgrad.empirical.finetune import FinetuneConfig, finetune
    from tvgrad.empirical.merge import merge
    from tvgrad.empirical.model import TINY
    from tvgrad.empirical.report import build
    from tvgrad.empirical.synthetic import write_mnist, write_resisc45
    write_mnist(tmp_path)
    write_resisc45(tmp_path)
    cfgs = [FinetuneConfig(dataset=d, model=TINY, pretrained="none", data_root=str(tmp_path),
                           out=str(tmp_path / "runs"), recipe="paper-code", batch_size=8,
                           epochs=2, device="cpu", num_workers=0, max_samples=24)
            for d in ("MNIST", "RESISC45")]
    for c in cfgs:
        finetune(c, progress=False)
    merge(cfgs)
    html = build(tmp_path / "runs", tmp_path / "empirical.html")
    dom, log = _open(html, tmp_path, "empirical")
    _clean(log)
    assert dom.count("<svg") >= 3  # shares, cosines, accuracy vs α
    assert "published shares not shown" in dom or "no: " in dom
