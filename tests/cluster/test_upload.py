"""What ``submit`` uploads: never credentials, ignored files or links; suspect files only
when allowed; and exactly the files it lists (no cluster needed: the job server is faked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from passion_sweep.cli import main
from passion_sweep.cluster import jobs
from passion_sweep.cluster.upload import scan_upload
from tests.sweep.conftest import tiny_spec
from trainables.errors import ConfigError

# Assembled here so that this file itself does not look like it holds a key or a token.
PRIVATE_KEY = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"

CREDENTIALS = {
    ".env": "DB_PASSWORD=hunter2\n",
    ".env.production": "TOKEN=x\n",
    "deploy/prod.env": "TOKEN=x\n",
    ".netrc": "machine example.com login me password hunter2\n",
    ".aws/credentials": "[default]\n",
    ".ssh/id_rsa": PRIVATE_KEY,
    ".ssh/config": "Host *\n",
    ".ray/auth_token": "0123456789abcdef\n",
    ".git-credentials": "https://me:token@example.com\n",
    "certs/server.pem": PRIVATE_KEY,
    "certs/server.key": PRIVATE_KEY,
    "keys/id_ed25519": PRIVATE_KEY,
    "keys/id_ed25519.pub": "ssh-ed25519 AAAA me\n",
    "gcp-service-account.json": "{}\n",
}
SUSPECTS = {
    "notes/how-to.txt": f"key:\n{PRIVATE_KEY}",
    "scripts/aws.sh": f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID}\n",
    "config/app.toml": f'token = "{GITHUB_TOKEN}"\n',
    "config/secrets.yaml": "db: {user: me}\n",
}
CODE = {
    "train.py": "print('training')\n",
    "pkg/tokenizer.py": "TOKENS = ['a']\n",
    "pkg/secret_sharing.py": "def share(): ...\n",
    "README.md": "Keep private keys out of the repository.\n",
}


def project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(root / "sweeps")))
    return root


def test_credentials_ignored_files_and_links_are_left_out(tmp_path: Path) -> None:
    root = project(tmp_path, {**CREDENTIALS, **CODE, "results/big.csv": "x\n", "pkg/out.log": "x\n"})
    (tmp_path / ".gitignore").write_text("/results\n")
    (tmp_path / "pkg" / ".gitignore").write_text("*.log\n")
    (tmp_path / "home-ssh").symlink_to(Path.home())

    upload = scan_upload(root, ["/sweeps"])

    uploaded = {file.path for file in upload.files}
    assert uploaded == {*CODE, "spec.yaml", ".gitignore", "pkg/.gitignore"}
    assert not upload.suspects
    assert set(upload.credentials) == {
        ".env", ".env.production", "deploy/prod.env", ".netrc", ".aws/", ".ssh/", ".ray/auth_token",
        ".git-credentials", "certs/server.pem", "certs/server.key", "keys/id_ed25519", "keys/id_ed25519.pub",
        "gcp-service-account.json",
    }  # fmt: skip
    assert upload.links == ("home-ssh",)
    summary = upload.summary()
    assert summary.startswith(f"uploading {len(uploaded)} files (")
    assert "largest: spec.yaml " in summary and "left out as credentials: .aws/, .env, " in summary


def test_files_that_look_like_secrets_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = project(tmp_path, {**SUSPECTS, **CODE})
    upload = scan_upload(root)
    assert {suspect.path: suspect.reason for suspect in upload.suspects} == {
        "notes/how-to.txt": "a private key",
        "scripts/aws.sh": "an AWS access key id",
        "config/app.toml": "a GitHub token",
        "config/secrets.yaml": "its name",
    }
    with pytest.raises(ConfigError, match=r"refusing to upload 4 file\(s\) .* --allow-suspected-secrets"):
        jobs.plan_job(root / "spec.yaml", working_dir=root)
    plan = jobs.plan_job(root / "spec.yaml", working_dir=root, allow_suspected_secrets=True)
    assert set(SUSPECTS) <= {file.path for file in plan.upload.files}


def test_the_project_itself_uploads_without_suspects() -> None:
    upload = scan_upload(Path(__file__).resolve().parents[2], jobs.WORKING_DIR_EXCLUDES)
    assert upload.files and not upload.suspects, upload.suspects


class FakeJobServer:
    """Records what a submission would upload: the files of the runtime env's working folder."""

    uploaded: ClassVar[set[str]] = set()

    def submit_job(self, *, entrypoint: str, runtime_env: dict[str, Any], metadata: dict[str, str]) -> str:
        folder = Path(runtime_env["working_dir"])
        FakeJobServer.uploaded = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}
        return "raysubmit_fake"


def test_submit_uploads_exactly_the_listed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path / "project", {**CREDENTIALS, **CODE})
    monkeypatch.chdir(root)
    monkeypatch.setattr(jobs, "_client", lambda address: FakeJobServer())

    result = CliRunner().invoke(main, ["submit", "spec.yaml", "--address", "http://head:8265"])

    assert result.exit_code == 0, result.output
    assert FakeJobServer.uploaded == {*CODE, "spec.yaml"}
    assert f"uploading {len(CODE) + 1} files" in result.stdout and "submitted job raysubmit_fake" in result.stdout


def test_submit_refusal_is_one_line_with_exit_code_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, {**SUSPECTS, **CODE})
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["submit", "spec.yaml", "--dry-run"])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: refusing to upload 4 file(s)")
    allowed = CliRunner().invoke(main, ["submit", "spec.yaml", "--dry-run", "--allow-suspected-secrets"])
    assert allowed.exit_code == 0 and "notes/how-to.txt" in allowed.stdout and ".env" not in allowed.stdout
