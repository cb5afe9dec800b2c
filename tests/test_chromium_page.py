"""The tests' DevTools driver (``tests/chromium_page.py``) leaves nothing behind however Chromium ends: no process,
no profile folder, no open pipe, and says why it stopped; a browser that never answers or never starts is stood in
for by a small program (a real Chromium does neither on demand)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import chromium_page
import pytest
from chromium_page import CHROMIUM, DevTools, fresh_page


def _program(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as status:
            return status.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _profiles(tmp_path) -> list[str]:
    return sorted(os.listdir(tmp_path / "temp"))


@pytest.fixture
def own_temp(tmp_path, monkeypatch):
    """tempfile's folder for the driver's profile: this test's own, to see what is left in it."""
    import tempfile

    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    return tmp_path


def test_a_browser_that_never_answers_is_ended_and_its_profile_removed(own_temp):
    """A Chromium that started but said nothing (a first-run prompt, a wrapper waiting on something) failed the
    driver's start after its wait, and the browser kept running, its profile folder left, into the next tests."""
    silent = _program(own_temp, "silent", "echo 'waiting for something' >&2\necho $$ > \"$0.pid\"\nexec sleep 120")
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        DevTools(binary=silent, timeout_s=2)
    pid = int((own_temp / "silent.pid").read_text())
    assert time.monotonic() - started < 30
    assert "said nothing for 2 s" in str(failure.value) and "waiting for something" in str(failure.value)
    assert not _alive(pid)
    assert _profiles(own_temp) == []


def test_a_browser_that_cannot_start_says_why(own_temp):
    """A Chromium that stopped at once (a missing library, a sandbox it cannot make) was reported as "chromium closed
    its DevTools pipe", its own words on stderr thrown away: the failure quotes them."""
    broken = _program(own_temp, "broken", "echo 'error while loading shared libraries: libnss3.so' >&2\nexit 127")
    with pytest.raises(AssertionError) as failure:
        DevTools(binary=broken, timeout_s=20)
    assert "closed its DevTools pipe" in str(failure.value)
    assert "error while loading shared libraries: libnss3.so" in str(failure.value)
    assert _profiles(own_temp) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_closing_after_the_browser_died_leaves_nothing(own_temp):
    """With the browser gone (crashed, killed by the kernel for memory), closing raised BrokenPipeError on the
    Browser.close it wrote, before the profile was removed and the pipes closed (and the profile's removal can race
    the browser's helpers, still ending: it is tried again for up to 5 s)."""
    page = own_temp / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page, so that its renderer runs")
    tools = DevTools()
    tools.open(page.as_uri())
    pipes = tools._commands, tools._events
    tools._process.kill()
    tools._process.wait()
    tools.close()
    assert _profiles(own_temp) == []
    for pipe in pipes:
        with pytest.raises(OSError):
            os.fstat(pipe)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_killed_browser_leaves_no_folder_of_its_own_in_the_temporary_folder(tmp_path, monkeypatch):
    """Chromium makes a folder of its own in the temporary folder (``org.chromium.Chromium.*``, its profile's lock
    socket), which it removes as it closes: a browser killed (a test of a crash, a hang ended, a timeout) left it
    behind, dozens of them in a machine's temporary folder. The driver gives the browser a temporary folder inside its
    own, removed with it whatever ended the browser; so does a one-off run of :func:`chromium` cut short."""
    import shutil
    import subprocess
    import tempfile

    # a short folder: the socket's path in it must fit a socket address (107 bytes; Chromium stops at a longer one)
    temp = Path(tempfile.mkdtemp(prefix="chromium-"))
    try:
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setattr(tempfile, "tempdir", str(temp))
        page = tmp_path / "page.html"
        page.write_text("<!DOCTYPE html><title>t</title><p>a page")
        tools = DevTools()
        tools.open(page.as_uri())
        assert tools.evaluate("document.title") == "t"
        assert any(name.startswith("org.chromium.Chromium.") for name in os.listdir(temp))  # made as it started
        tools._process.kill()
        tools._process.wait()
        tools.close()
        assert os.listdir(temp) == []
        with pytest.raises(subprocess.TimeoutExpired):  # a page shown, not dumped: it runs until it is ended
            chromium_page.chromium(page.as_uri(), timeout=5)
        assert os.listdir(temp) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_the_shared_browser_gives_each_test_a_fresh_tab_and_starts_again_once_it_died(own_temp):
    """The page tests share one browser in a process (a Chromium started per probe cost 1-2 s each, some 40 times a
    run): each gets a new tab, without the history, the viewport or the page of the test before; a browser that died
    is started again, and closing it leaves no process and no profile."""
    chromium_page.close_shared()  # the next start makes its profile in this test's folder
    page = own_temp / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page")
    with fresh_page() as first:
        first.send("Emulation.setDeviceMetricsOverride", first.session, width=600, height=900, deviceScaleFactor=1,
                   mobile=False)
        first.open(page.as_uri())
        first.evaluate("location.hash='#moved'")
        assert first.evaluate("[history.length, innerWidth]") == [3, 600]  # about:blank, the page, its fragment
    with fresh_page() as second:
        assert second is first
        assert second.evaluate("[history.length, location.href, innerWidth === 600]") == [1, "about:blank", False]
        second.open(page.as_uri())
        assert second.evaluate("history.length") == 2
    assert len(_profiles(own_temp)) == 1
    first._process.kill()
    first._process.wait()
    with fresh_page() as third:
        assert third is not first and third.alive()
        third.open(page.as_uri())
        assert third.evaluate("document.title") == "t"
    pid = third._process.pid
    assert _profiles(own_temp) != [] and not first.alive()
    chromium_page.close_shared()
    assert not _alive(pid) and _profiles(own_temp) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_fresh_tab_sees_no_storage_or_cookie_a_test_before_left(tmp_path):
    """The tabs of the shared browser shared its profile: a value one test's page put in ``localStorage`` (the report's
    file:// pages share one origin) was there for every later test's page, which then began in another state than a
    reader's. Each fresh tab has a store of its own, and what it kept goes with it."""
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page")
    read = "[localStorage.length, sessionStorage.length, indexedDB !== undefined]"
    with fresh_page() as first:
        first.open(page.as_uri())
        first.evaluate("localStorage.setItem('order','dice-2-desc');sessionStorage.setItem('order','flags-desc')")
        assert first.evaluate(read) == [1, 1, True]
        first.send("Network.enable", first.session)
        first.send("Network.setCookie", first.session, name="kept", value="1", url="http://medseg.invalid/")
    with fresh_page() as second:
        second.open(page.as_uri())
        assert second.evaluate(read) == [0, 0, True]
        second.send("Network.enable", second.session)
        assert second.send("Network.getCookies", second.session, urls=["http://medseg.invalid/"])["cookies"] == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_probe_measures_the_width_asked_and_says_at_once_why_its_expression_failed(tmp_path):
    """A probe at 390 px (a phone) measured a 500 px wide window, Chromium's narrowest for ``--window-size``: the
    viewport is as wide as asked. A probe whose expression threw waited for the driver's 60 s and then failed as
    "chromium said nothing", quoting the browser's unrelated log: it fails at once with the page's error."""
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><body><p>a page</body>")
    assert chromium_page.probe_page(page, tmp_path, 390, "innerWidth+':'+document.documentElement.clientWidth") == (
        "390:390")
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        chromium_page.probe_page(page, tmp_path, 390, "document.querySelector('table').rows.length")
    assert time.monotonic() - started < 20
    assert "said nothing" not in str(failure.value)
    assert "TypeError" in str(failure.value) and "reading 'rows'" in str(failure.value)
    assert chromium_page.probe_page(page, tmp_path, 800, "innerWidth") == "800"  # the next probe as usual


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_tab_a_test_closed_or_crashed_leaves_the_next_tests_tab_working(tmp_path):
    """The next fresh tab closed the tab before: a test that had closed its own tab (or whose page's renderer had
    crashed) failed the next test, which had nothing to do with it, with "No target with given id found"."""
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page")
    with fresh_page() as closing:
        closing.open(page.as_uri())
        closing.send("Target.closeTarget", targetId=closing._target)
    with fresh_page() as crashing:
        crashing.open(page.as_uri())
        assert crashing.evaluate("document.title") == "t"
        waited, crashing._timeout_s = crashing._timeout_s, 5  # a crashed page answers no command
        try:
            with pytest.raises(AssertionError, match="said nothing for 5 s"):
                crashing.send("Page.crash", crashing.session)
        finally:
            crashing._timeout_s = waited
    with fresh_page() as after:
        after.open(page.as_uri())
        assert after.evaluate("document.title") == "t"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_hung_shared_browser_is_ended_and_started_again_at_the_next_page(tmp_path):
    """A whole-browser hang (stopped here with SIGSTOP: still running, answering nothing) made each later page test of
    the process wait the driver's 60 s and fail, since the shared browser still ran. The next fresh page finds it does
    not answer within a few seconds, ends it, and starts one browser again; a browser killed outright likewise."""
    import signal

    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page")
    with fresh_page() as first:
        first.open(page.as_uri())
    hung = first._process.pid
    os.kill(hung, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with fresh_page() as second:
            second.open(page.as_uri())
            title = second.evaluate("document.title")
        waited = time.monotonic() - started
    finally:
        if _alive(hung):
            os.kill(hung, signal.SIGCONT)
    assert second is not first and title == "t"
    assert waited < 30, waited
    assert not _alive(hung) and not first.alive()
    os.kill(second._process.pid, signal.SIGKILL)
    second._process.wait()
    with fresh_page() as third:
        third.open(page.as_uri())
        assert third is not second and third.evaluate("document.title") == "t"
    os.kill(third._process.pid, signal.SIGSTOP)  # hung as the test run ends: ended, not waited for 60 s
    started = time.monotonic()
    chromium_page.close_shared()
    assert time.monotonic() - started < 30 and not _alive(third._process.pid)


def test_only_chromiums_own_socket_folder_in_the_temporary_folder_is_removed(tmp_path, monkeypatch):
    """The profile's ``SingletonSocket`` link names the folder removed once the browser has ended; its name alone
    (``org.chromium.Chromium.*``) was checked, so a link naming such a folder elsewhere (a user's, or one relative to
    the working folder) had it removed with all it held. Only what Chromium puts there (its socket and the
    SingletonCookie link) is removed, and the folder where that leaves it empty."""
    import tempfile

    temp, work = tmp_path / "temp", tmp_path / "work"
    temp.mkdir()
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.chdir(work)

    def folder(parent: Path, name: str) -> Path:
        made = parent / name
        made.mkdir()
        (made / "kept.txt").write_text("a user's file")
        return made

    def profile_linking(target: str) -> str:
        profile = Path(tempfile.mkdtemp(dir=tmp_path))
        os.symlink(target, profile / "SingletonSocket")
        return str(profile)

    elsewhere = folder(work, "org.chromium.Chromium.users")
    chromium_page.remove_socket_folder(profile_linking(str(elsewhere / "SingletonSocket")))
    assert (elsewhere / "kept.txt").read_text() == "a user's file"
    relative = folder(work, "org.chromium.Chromium.relative")
    chromium_page.remove_socket_folder(profile_linking("org.chromium.Chromium.relative/SingletonSocket"))
    assert (relative / "kept.txt").exists()
    os.mknod(elsewhere / "SingletonSocket", stat.S_IFSOCK | 0o600)
    chromium_page.remove_socket_folder(profile_linking(str(elsewhere / "SingletonSocket")))
    assert (elsewhere / "kept.txt").read_text() == "a user's file"
    own = temp / "org.chromium.Chromium.AbC123"
    own.mkdir()
    os.mknod(own / "SingletonSocket", stat.S_IFSOCK | 0o600)
    os.symlink("5103233373830827778", own / "SingletonCookie")
    chromium_page.remove_socket_folder(profile_linking(str(own / "SingletonSocket")))
    assert not own.exists() and os.listdir(temp) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)")
def test_a_killed_browser_leaves_no_socket_folder_where_tempfile_is_told_another_folder(tmp_path, monkeypatch):
    """Tests that give tempfile a folder of their own (tempfile.tempdir, not $TMPDIR) still have Chromium make its
    socket folder in the system's temporary folder: it is removed there too, once the browser has ended."""
    import tempfile

    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    monkeypatch.delenv("TMPDIR", raising=False)
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><title>t</title><p>a page")
    tools = DevTools()
    tools.open(page.as_uri())
    folder = os.path.dirname(os.readlink(os.path.join(tools._profile.name, "SingletonSocket")))
    assert os.path.isdir(folder)
    tools._process.kill()
    tools._process.wait()
    tools.close()
    assert not os.path.exists(folder)
