"""The Korean interface: the catalog against the marked strings, `--lang` / CONVSCOPE_LANG / the locale on the
command line, `cs.set_language`, the server's Accept-Language (also for answers worded in the batch worker process),
the report and the drawing page in Chromium.

The suite itself speaks English whatever the machine's locale (conftest.py sets CONVSCOPE_LANG=en); each check here
asks for Korean explicitly.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import convscope as cs
from convscope import i18n
from convscope.cli import main

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PO = SRC / "convscope" / "locale" / "ko" / "LC_MESSAGES" / "convscope.po"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def korean(text: str) -> bool:
    return HANGUL.search(text) is not None


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.set_language(None)


# --- the catalog ------------------------------------------------------------------------------


def read_catalog(path: Path):
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        return read_po(f)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    """What `make catalogs` extracts from the sources now (pybabel, the same babel.cfg), by msgid."""
    pytest.importorskip("babel")
    pot = tmp_path_factory.mktemp("pot") / "convscope.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F", "babel.cfg", "-o", str(pot), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return {message.id: message for message in read_catalog(pot) if message.id}


@pytest.fixture(scope="module")
def catalog() -> dict:
    pytest.importorskip("babel")
    return {message.id: message for message in read_catalog(PO) if message.id}


@pytest.mark.slow
def test_the_catalog_holds_exactly_the_strings_the_sources_mark(extracted, catalog):
    missing = sorted(map(str, set(extracted) - set(catalog)))
    unused = sorted(map(str, set(catalog) - set(extracted)))
    assert not missing, f"{len(missing)} marked strings are not in the catalog (run `make catalogs`): {missing[:5]}"
    assert not unused, f"{len(unused)} catalog entries are marked nowhere (run `make catalogs`): {unused[:5]}"


def test_every_entry_is_translated_and_none_is_fuzzy(catalog):
    untranslated = [m.id for m in catalog.values() if not (m.string if isinstance(m.string, str) else all(m.string))]
    fuzzy = [m.id for m in catalog.values() if m.fuzzy]
    assert not untranslated, f"{len(untranslated)} untranslated, e.g. {untranslated[:3]}"
    assert not fuzzy, f"{len(fuzzy)} fuzzy, e.g. {fuzzy[:3]}"


def fields(text: str) -> Counter:
    """The fields a translation must keep: `{name:spec}` (str.format) and `%(name)s` / `%s` (jinja2, argparse)."""
    found: Counter = Counter()
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            found["{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"] += 1
    found.update(re.findall(r"%\(\w+\)[sdr]|%[sdr]", text))
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{a} and {b:.2f} of {a!r}", {"{a}": 1, "{b:.2f}": 1, "{a!r}": 1}), ("%(n)s of %s", {"%(n)s": 1, "%s": 1})],
)
def test_fields_are_read_from_both_styles(text, expected):
    assert fields(text) == Counter(expected)


def test_every_translation_keeps_its_fields(catalog):
    wrong = []
    for message in catalog.values():
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        for translated in filter(None, strings):  # an untranslated entry is the test above's finding
            # a plural's forms: the translation keeps the plural's fields (Korean has one form for every count)
            if set(fields(translated)) != set(fields(ids[-1])):  # a field may be named twice in one language
                wrong.append((ids[-1], translated))
    assert not wrong, f"{len(wrong)} translations change their fields, e.g. {wrong[:2]}"


def test_the_compiled_catalog_is_the_current_one(catalog):
    """The .mo the package reads says what the .po says (the build compiles it; `make catalogs` too)."""
    stale = [
        m.id
        for m in catalog.values()
        if isinstance(m.id, str) and m.string and i18n.translations("ko").gettext(m.id) != m.string
    ]
    assert not stale, f"{len(stale)} entries differ from the compiled catalog (reinstall or `make catalogs`)"


# --- choosing the language --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        ("en-US,en;q=0.9", "en"),
        ("fr, en;q=0.5, ko;q=0.7", "ko"),
        ("ko;q=0, en;q=0.1", "en"),
        ("ko;q=abc, en", "en"),
        ("fr, de", None),
        ("*", None),
        ("", None),
        (None, None),
    ],
)
def test_accept_language_is_read_by_quality(header, expected):
    assert i18n.from_accept_language(header) == expected


def test_set_language_speaks_korean_and_refuses_unknown_languages(tmp_path):
    assert cs.set_language("ko") == "ko"
    with pytest.raises(cs.UserError) as caught:
        cs.load_run(tmp_path / "nothing")
    assert korean(str(caught.value)) and "nothing" in str(caught.value)
    with pytest.raises(cs.UserError, match="xx"):
        cs.set_language("xx")
    assert cs.set_language("en") == "en"
    with pytest.raises(cs.UserError) as caught:
        cs.load_run(tmp_path / "nothing")
    assert not korean(str(caught.value))


def test_lang_flag_on_the_command_and_before_it(capsys, tmp_path):
    for argv in (["--lang", "ko", "evaluate", str(tmp_path)], ["evaluate", str(tmp_path), "--lang=ko"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("convscope evaluate: 오류: ") and str(tmp_path) in err, err
        assert len(err.splitlines()) == 1
    assert main(["evaluate", str(tmp_path), "--lang", "en"]) == 2
    assert "error: " in capsys.readouterr().err
    assert i18n.language() == "en"  # --lang held for that call only


def test_korean_help_and_argparse_errors(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help", "--lang", "ko"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("사용법: convscope train")
    assert "이 도움말을 보여 주고 끝내요" in out and "--lang {en,ko}" in out
    assert "(기본값: 0.2)" in out  # --test-split's default, in the language of the page

    with pytest.raises(SystemExit) as done:
        main(["train", "--epochs", "0", "--lang", "ko"])
    assert done.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("convscope train: 오류: 인자 --epochs: ") and "'0'" in last, last


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("CONVSCOPE_LANG", "LC_ALL", "LC_MESSAGES", "LANG")}
    environment.update(env, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "env", [{"CONVSCOPE_LANG": "ko"}, {"LANG": "ko_KR.UTF-8"}, {"LC_ALL": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"}]
)
def test_the_environment_chooses_korean(env, tmp_path):
    result = run_cli("evaluate", str(tmp_path / "missing"), **env)
    assert result.returncode == 2
    assert result.stderr.startswith("convscope evaluate: 오류: ") and "Traceback" not in result.stderr
    assert korean(run_cli("--help", **env).stdout)


@pytest.mark.slow
def test_the_flag_wins_over_the_environment(tmp_path):
    result = run_cli("evaluate", str(tmp_path / "missing"), "--lang", "en", CONVSCOPE_LANG="ko")
    assert result.returncode == 2 and not korean(result.stderr) and "error: " in result.stderr


@pytest.mark.slow
def test_korean_training_output(tmp_path):
    """Progress, the split line, the saved-run line in Korean, from a real (tiny) training run."""
    result = run_cli("train", "--data", "digits", "--model", "mlp", "--epochs", "1", "--no-report", "--out",
                     str(tmp_path / "run"), LANG="ko_KR.UTF-8")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "에포크 1/1" in result.stdout
    assert "분할: 학습 " in result.stdout
    assert f"실행을 {tmp_path / 'run'}에 저장했어요" in result.stdout


# --- the report -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_report_in_korean(mlp_run, tmp_path, capsys):
    run = shutil.copytree(mlp_run, tmp_path / "run")
    assert main(["report", str(run), "--lang", "ko"]) == 0
    html = (run / "report.html").read_text("utf-8")
    assert '<html lang="ko">' in html
    headings = re.findall(r"<h2>([^<]*)</h2>", html)
    for heading in ("학습", "테스트 지표", "혼동 행렬", "예측"):
        assert heading in headings, headings
    assert "convscope 보고서: " in html and "Confusion matrix" not in html


# --- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(mlp_run):
    pytest.importorskip("fastapi")
    from server_process import running_server

    # the batch worker in a process of its own: its errors are worded there, in each job's language
    with running_server(mlp_run, "--batch-worker", "process") as url:
        yield url


def post_pixels(url: str, language: str, pixels) -> tuple[int, str]:
    import httpx2

    response = httpx2.post(url + "/predict", json={"pixels": pixels}, headers={"Accept-Language": language}, timeout=60)
    return response.status_code, response.json()["error"]


@pytest.mark.slow
def test_accept_language_chooses_the_language_of_error_messages(server):
    import httpx2

    ko = httpx2.post(server + "/predict", content=b"", headers={"Accept-Language": "ko-KR,ko;q=0.9"}, timeout=30)
    en = httpx2.post(server + "/predict", content=b"", headers={"Accept-Language": "en-US,en;q=0.9"}, timeout=30)
    assert ko.status_code == en.status_code == 400
    assert ko.json()["error"].startswith("요청 본문이 비어 있어요")
    assert en.json()["error"].startswith("the request body is empty")
    weighed = httpx2.get(server + "/nowhere", headers={"Accept-Language": "en;q=0.3, ko;q=0.8"}, timeout=30)
    assert weighed.status_code == 404 and korean(weighed.json()["error"])
    # pixels of the wrong shape are refused by the batch worker process: the language travels with the job
    status, message = post_pixels(server, "ko", [[1, 2], [3, 4]])
    assert status == 422 and message.startswith("픽셀 모양이 (2, 2, 1)인데"), message


@pytest.mark.slow
def test_concurrent_requests_keep_their_own_languages(server):
    """Requests in both languages at once, batched together in the worker process: none answers in the other's."""
    languages = ["ko", "en"] * 24
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda lang: post_pixels(server, lang, [[1, 2, 3]] * 3), languages))
    for lang, (status, message) in zip(languages, answers):
        assert status == 422
        assert korean(message) == (lang == "ko"), (lang, message)


# --- the drawing page, in Chromium ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
def test_the_drawing_page_in_korean(server):
    from browser import CHROMIUM_FLAGS, chromium_or_skip

    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(locale="ko-KR", viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.goto(server + "/")
        page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
        assert page.evaluate("document.documentElement.lang") == "ko"
        assert page.locator("#draw-title").text_content() == "그리기"
        assert page.locator("#source").text_content() == "아직 없음"
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
        page.mouse.down()
        page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.7 * box["height"], steps=8)
        page.mouse.up()
        # written by the script, from the page's own sentences
        page.wait_for_function("document.getElementById('source').textContent === '내 그림'")
        assert page.locator("#confidence").text_content().endswith("% 확신")
        page.click("#clear")
        page.wait_for_function("document.getElementById('source').textContent === '아직 없음'")
        assert page.locator("#layers .hint").text_content() == "이미지를 그리거나 올리면 보여요"
        # ?lang= overrides the browser's languages
        page.goto(server + "/?lang=en")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.locator("#draw-title").text_content() == "Draw"
        context.close()
        browser.close()
