"""A third-party TLS scan (sslyze, Mozilla "intermediate") of a floatgate frontend.

sslyze pins an older ``cryptography`` than floatgate, so it lives in its own virtualenv,
``.venv-scan``, which scripts/test.sh installs. In CI a missing scanner is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port
from tests.functional.pki import Pki
from tests.functional.test_tls import tls_yaml

SCANNER = REPO / ".venv-scan" / "bin" / "python"
MOZILLA_INTERMEDIATE_TLS12 = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}  # fmt: skip


@pytest.mark.parametrize("certificate", ["app", "other"])  # ECDSA P-256 and RSA-2048
async def test_sslyze_mozilla_intermediate(
    certificate: str, backends: Any, proxy: Any, pki: Pki, tmp_path: Path
) -> None:
    if not SCANNER.exists():
        if os.environ.get("CI"):
            pytest.fail("sslyze scanner missing (.venv-scan): scripts/test.sh installs it")
        pytest.skip("sslyze not installed in .venv-scan (scripts/test.sh installs it)")
    backend = await backends("a")
    port = free_port()
    await proxy(tls_yaml(port, backend.address, certs=f"[{certificate}]"), pki.dir)
    out = tmp_path / "scan.json"
    scan = await asyncio.create_subprocess_exec(
        str(SCANNER), "-m", "sslyze", "--certinfo_ca_file", pki.path("ca.pem"),
        "--mozilla_config=intermediate", "--json_out", str(out),
        f"{certificate}.test:{port}{{127.0.0.1}}",  # name for SNI and validation, address
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    text = (await asyncio.wait_for(scan.communicate(), 180))[0].decode()
    result = json.loads(out.read_text())["server_scan_results"][0]["scan_result"]

    def accepted(kind: str) -> set[str]:
        suites = result[f"{kind}_cipher_suites"]["result"]["accepted_cipher_suites"]
        return {c["cipher_suite"]["name"] for c in suites}

    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted(old) == set(), old
    assert accepted("tls_1_2") and accepted("tls_1_2") <= MOZILLA_INTERMEDIATE_TLS12
    assert accepted("tls_1_3")
    deployment = result["certificate_info"]["result"]["certificate_deployments"][0]
    assert len(deployment["received_certificate_chain"]) == 2  # leaf + intermediate
    assert deployment["received_chain_has_valid_order"]
    assert any(p["trust_store"]["name"] == "Supplied CA file" and p["was_validation_successful"]
               for p in deployment["path_validation_results"])  # fmt: skip
    assert result["tls_compression"]["result"]["supports_compression"] is False
    assert (
        result["session_renegotiation"]["result"]["is_vulnerable_to_client_renegotiation_dos"]
        is False
    )
    # The one documented deviation from Mozilla intermediate: Python 3.11's ssl module
    # cannot restrict key-exchange groups without dropping X25519, so OpenSSL's default
    # groups (which add X448 and secp521r1, both sound) stay enabled.
    problems = [line.strip() for line in text.splitlines() if line.strip().startswith("* ")]
    problems = [p for p in problems if ":" in p and not p.startswith("* tls_curves:")]
    compliance = text.split("COMPLIANCE AGAINST TLS CONFIGURATION")[-1]
    assert [p for p in problems if p in compliance] == [], compliance
