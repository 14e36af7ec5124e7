""".ci/system-packages, which `make test` runs first: it must never stop the test run, whatever the machine has.

It runs with stand-ins for dpkg-query, id, sudo and apt-get on an otherwise empty PATH, so each case is the same
on every machine; one more case runs it against this machine's real dpkg-query."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "system-packages"
BASH = shutil.which("bash")


def package_list() -> list[str]:
    """The packages the script asks for, read from the script itself."""
    text = SCRIPT.read_text()
    block = text.split('DEBIAN_PACKAGES="', 1)[1].split('"', 1)[0]
    return block.replace("\\", " ").split()


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    """A fake command that appends its name and arguments to calls.log, then runs `body` (bash)."""
    path = bin_dir / name
    path.write_text(f'#!{BASH}\necho "{name} $*" >> "{bin_dir}/calls.log"\n{body}\n')
    path.chmod(0o755)


def dpkg_query_knowing(installed: list[str]) -> str:
    """Like the real dpkg-query -W: the status of each known package, exit 1 for one it does not know."""
    known = " ".join(installed)
    return f"""status=0
for arg in "$@"; do
  case "$arg" in -*) continue ;; esac
  if [[ " {known} " == *" $arg "* ]]; then printf 'install ok installed'
  else echo "dpkg-query: no packages found matching $arg" >&2; status=1; fi
done
exit $status"""


def run_script(bin_dir: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    result = subprocess.run([BASH, str(SCRIPT)], env={"PATH": str(bin_dir)}, capture_output=True, text=True,
                            timeout=30)
    log = bin_dir / "calls.log"
    return result, log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def bin_dir(tmp_path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    stand_in(folder, "apt-get", "exit 0")
    return folder



def pretend_machine(bin_dir: Path, installed: list[str], uid: int) -> None:
    """Stand-in dpkg-query knowing `installed` and id -u answering `uid` (0: root)."""
    stand_in(bin_dir, "dpkg-query", dpkg_query_knowing(installed))
    stand_in(bin_dir, "id", f"echo {uid}")


def test_all_installed_exits_0_without_apt_get(bin_dir):
    pretend_machine(bin_dir, installed=package_list(), uid=1000)
    result, calls = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    assert not any(call.startswith("apt-get") for call in calls), calls
    assert result.stdout == ""


def test_missing_packages_as_root_are_installed(bin_dir):
    wanted = package_list()
    pretend_machine(bin_dir, installed=[p for p in wanted if p not in ("xvfb", "xdotool")], uid=0)
    result, calls = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    installs = [call.split() for call in calls if call.startswith("apt-get install")]
    assert len(installs) == 1, calls
    assert [word for word in installs[0][2:] if not word.startswith("-")] == ["xvfb", "xdotool"]
    assert "apt-get update -qq" in calls


def test_not_root_without_sudo_prints_the_advice_and_exits_0(bin_dir):
    pretend_machine(bin_dir, installed=["x11-utils", "libgl1"], uid=1000)
    result, calls = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: cannot install"), result.stdout
    assert "sudo apt-get install xvfb xdotool" in lines[0] and "x11-utils" not in lines[0]
    assert not any(call.startswith("apt-get") for call in calls)


def test_not_root_with_passwordless_sudo_installs_through_sudo(bin_dir):
    pretend_machine(bin_dir, installed=[], uid=1000)
    stand_in(bin_dir, "sudo", 'while [[ $1 == -n || $1 == *=* ]]; do shift; done; "$@"')
    result, calls = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    sudo_installs = [call for call in calls if call.startswith("sudo") and " apt-get install " in call]
    assert len(sudo_installs) == 1 and all(p in sudo_installs[0].split() for p in package_list())
    assert any(call.startswith("apt-get install") for call in calls)  # the stand-in sudo ran it


def test_failing_apt_get_is_a_note_not_a_stop(bin_dir):
    pretend_machine(bin_dir, installed=[], uid=0)
    stand_in(bin_dir, "apt-get", "echo 'E: could not resolve deb.debian.org' >&2; exit 100")
    result, _ = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    assert "note: apt-get could not install them" in result.stdout


def test_not_a_debian_system_notes_and_exits_0(bin_dir):
    stand_in(bin_dir, "id", "echo 0")
    result, calls = run_script(bin_dir)  # no dpkg-query on PATH
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("note: not a Debian system")
    assert calls == []


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="needs a Debian system's dpkg-query")
def test_real_dpkg_query_asks_apt_get_for_exactly_what_is_missing(bin_dir):
    real = shutil.which("dpkg-query")
    (bin_dir / "dpkg-query").symlink_to(real)  # this machine's real package database
    stand_in(bin_dir, "id", "echo 0")
    missing = [p for p in package_list()
               if "install ok installed" not in subprocess.run([real, "-W", "-f=${Status}", p],
                                                               capture_output=True, text=True).stdout]
    result, calls = run_script(bin_dir)
    assert result.returncode == 0, result.stderr
    installs = [call.split() for call in calls if call.startswith("apt-get install")]
    if missing:
        assert [word for word in installs[0][2:] if not word.startswith("-")] == missing
    else:
        assert installs == []
