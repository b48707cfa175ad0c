"""aws.greengrass.SecretManager: GetSecretValue over IPC for the secrets given to `ggsim up --secrets`."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.support.ggsim_cli import Ggsim, deploy, recipe, running_ggsim, wait_for_lines, write_recipes

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"

SECRETS = textwrap.dedent(f"""\
    secrets:
      - name: db-password
        arn: {ARN}
        versions:
          - versionId: v2
            stages: [AWSCURRENT]
            secretString: hunter3
          - versionId: v1
            stages: [AWSPREVIOUS]
            secretString: hunter2
      - name: tls-key
        secretBinary: aGVsbG8=
      - name: not-for-you
        secretString: private
""")

READER = textwrap.dedent("""\
    import json, sys
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
    ipc = GreengrassCoreIPCClientV2()
    out = open(sys.argv[1], "a")
    def ask(**request):
        try:
            r = ipc.get_secret_value(**request)
            value = r.secret_value.secret_string if r.secret_value.secret_string is not None else \\
                r.secret_value.secret_binary.decode()
            out.write(json.dumps({"id": r.secret_id, "version": r.version_id, "stages": r.version_stage,
                                  "value": value}) + "\\n")
        except Exception as exc:
            out.write(json.dumps({"error": type(exc).__name__, "message": getattr(exc, "message", str(exc))})
                      + "\\n")
        out.flush()
    ask(secret_id="db-password")
    ask(secret_id=sys.argv[2], version_stage="AWSPREVIOUS")
    ask(secret_id="db-password", version_id="v2")
    ask(secret_id="tls-key")
    ask(secret_id="not-for-you")
    ask(secret_id="db-password", version_stage="NOPE")
""")


def test_get_secret_value_by_name_arn_stage_and_version_as_access_control_allows(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(SECRETS)
    with running_ggsim(tmp_path / "root", "--secrets", str(secrets)) as ggsim:
        script = tmp_path / "reader.py"
        script.write_text(READER)
        seen = tmp_path / "seen.jsonl"
        access = {"aws.greengrass.SecretManager": {"reader:secrets": {
            "operations": ["aws.greengrass#GetSecretValue"],
            "resources": [ARN, "arn:aws:secretsmanager:us-east-1:000000000000:secret:tls-key"]}}}
        doc = recipe("test.SecretReader", "1.0.0", {"Run": f"{sys.executable} -u {script} {seen} {ARN}"},
                     {"accessControl": access})
        doc["ComponentDependencies"] = {"aws.greengrass.SecretManager": {"VersionRequirement": "^2.1.0"}}
        status = deploy(ggsim, write_recipes(tmp_path / "recipes", doc), "--merge", "test.SecretReader=1.0.0")
        assert status["status"] == "SUCCEEDED", status
        current, previous, by_id, binary, denied, no_stage = wait_for_lines(seen, 6)
        assert current == {"id": ARN, "version": "v2", "stages": ["AWSCURRENT"], "value": "hunter3"}
        assert previous == {"id": ARN, "version": "v1", "stages": ["AWSPREVIOUS"], "value": "hunter2"}
        assert by_id["value"] == "hunter3"
        assert binary["value"] == "hello"
        assert denied["error"] == "UnauthorizedError"
        assert "arn:aws:secretsmanager:us-east-1:000000000000:secret:not-for-you" in denied["message"]
        assert no_stage["error"] == "ResourceNotFoundError" and "NOPE" in no_stage["message"]


def test_a_bad_secrets_file_is_refused_naming_the_entry(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("secrets:\n  - name: both\n    secretString: a\n    secretBinary: Yg==\n")
    result = Ggsim(tmp_path / "root").run("up", "--secrets", str(secrets), check=False)
    assert result.returncode == 2
    assert "secrets[0]: give exactly one of secretString and secretBinary" in result.stderr
