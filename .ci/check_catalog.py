#!/usr/bin/env python3
"""Second, independent check of a signed mdlpool package (shares no code with xtask).

Uses signify (PyPI) to
  * verify mdlpool.sys's embedded Authenticode signature,
  * verify mdlpool.sys and mdlpool.inf *through the catalog* mdlpool.cat (signify finds
    the member whose indirect-data hash equals the file's hash, checks the catalog's
    SignedData and the signer's chain to the trusted mdlpool-test.cer),
and, by reading the catalog's CTL itself, that it lists exactly the files the INF
names, each with the hash of the file on disk (hashlib for the flat INF, signify's
Authenticode fingerprint for the image), with the File / OSAttr member attributes
and the OS / OSAttr / HWID1 catalog attributes.

usage: check_catalog.py PACKAGE_DIR [ARCH]     exit 0 = all good, 1 = a check failed
"""

import datetime
import hashlib
import re
import sys
from pathlib import Path


def _import_signify():
    # oscrypto 1.3.0 (signify's dependency, the newest on PyPI) cannot parse an
    # OpenSSL version string such as "3.0.19" (two-digit patch level) and refuses to
    # load. Widen its version pattern while it imports; nothing else changes.
    orig = re.search
    old = "\\b(\\d\\.\\d\\.\\d[a-z]*)\\b"

    def search(pattern, string, *args, **kwargs):
        if pattern == old:
            pattern = "\\b(\\d+\\.\\d+\\.\\d+[a-z]*)\\b"
        return orig(pattern, string, *args, **kwargs)

    re.search = search
    try:
        import oscrypto.asymmetric  # noqa: F401
    finally:
        re.search = orig
    from signify.authenticode.signed_file import AuthenticodeFile
    from signify.authenticode.trust_list import CertificateTrustList
    from signify.x509 import Certificate, CertificateStore

    from signify.asn1.ctl import NameValue

    return AuthenticodeFile, CertificateTrustList, Certificate, CertificateStore, NameValue


AuthenticodeFile, CertificateTrustList, Certificate, CertificateStore, NameValue = _import_signify()

EXPECTED_OS = {"amd64": "_v100_X64", "arm64": "_v100_ARM64"}


def inf_files(inf_text):
    """Files of [SourceDisksFiles] (and .arch variants), plus the INF itself."""
    files = {"mdlpool.inf"}
    section = None
    for raw in inf_text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        if section and section.startswith("sourcedisksfiles") and "=" in line:
            files.add(line.split("=", 1)[0].strip().lower())
    return files


def inf_sections(inf_text):
    sections, name = {}, None
    for raw in inf_text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip().lower()
            sections.setdefault(name, [])
        elif line and name is not None:
            sections[name].append(line)
    return sections


def inf_component_ids(inf_text):
    """Hardware/component ids of the models sections [Manufacturer] names."""
    sections = inf_sections(inf_text)
    ids = []
    for line in sections.get("manufacturer", []):
        fields = [f.strip() for f in line.split("=", 1)[1].split(",")]
        models = [fields[0]] + [f"{fields[0]}.{d}" for d in fields[1:]]
        for model in models:
            for entry in sections.get(model.lower(), []):
                for hwid in entry.split("=", 1)[1].split(",")[1:]:
                    hwid = hwid.strip().lower()
                    if hwid and hwid not in ids:
                        ids.append(hwid)
    return ids


def check(pkg: Path, arch: str) -> list:
    problems = []
    sys_path, inf_path, cat_path = pkg / "mdlpool.sys", pkg / "mdlpool.inf", pkg / "mdlpool.cat"
    cer = Certificate.from_der((pkg / "mdlpool-test.cer").read_bytes())
    store = CertificateStore([cer], trusted=True)
    # The test certificate's signatures carry no timestamp: verify at "now".
    ctx_kwargs = {"timestamp": datetime.datetime.now(datetime.timezone.utc)}

    # 1. The image's embedded signature.
    with open(sys_path, "rb") as f:
        pe = AuthenticodeFile.from_stream(f)
        try:
            pe.verify(
                signature_types="embedded",
                trusted_certificate_store=store,
                verification_context_kwargs=ctx_kwargs,
            )
            print(f"  ok: {sys_path.name} embedded Authenticode signature")
        except Exception as e:  # noqa: BLE001 - report every failure by name
            problems.append(f"{sys_path.name} embedded signature: {type(e).__name__}: {e}")
        pe_sha256 = pe.get_fingerprint(hashlib.sha256)

    # 2. Each file through the catalog.
    for path, kwargs in ((sys_path, {}), (inf_path, {"allow_flat": True})):
        with open(path, "rb") as f, open(cat_path, "rb") as c:
            af = AuthenticodeFile.from_stream(f, **kwargs)
            af.add_catalog(c)
            try:
                af.verify(
                    signature_types="catalog",
                    trusted_certificate_store=store,
                    verification_context_kwargs=ctx_kwargs,
                )
                print(f"  ok: {path.name} verified through {cat_path.name}")
            except Exception as e:  # noqa: BLE001
                problems.append(f"{path.name} through the catalog: {type(e).__name__}: {e}")

    # 3. The catalog's content, read here.
    ctl = CertificateTrustList.from_envelope(cat_path.read_bytes())
    if ctl.subject_usage != ["microsoft_catalog_list"]:
        problems.append(f"subject usage {ctl.subject_usage}")
    if ctl._subject_algorithm != "microsoft_catalog_list_member_v2":
        problems.append(f"subject algorithm {ctl._subject_algorithm}")
    inf_text = inf_path.read_bytes().decode("utf-8")
    on_disk = {
        "mdlpool.inf": hashlib.sha256(inf_path.read_bytes()).digest(),
        "mdlpool.sys": pe_sha256,
    }
    wanted = inf_files(inf_text)
    if set(on_disk) != wanted:
        problems.append(f"the INF names {sorted(wanted)}; this checker knows {sorted(on_disk)}")
    seen = {}
    ids = []
    for s in ctl.subjects:
        nv = {}
        for attr in s.asn1["subject_attributes"]:
            if attr["type"].native == "microsoft_cat_namevalue":
                for v in attr["values"].native:
                    nv[v["refname"]] = v["value"]
        name = nv.get("File")
        ids.append(s.identifier)
        digest = s.indirect_data.digest if s.indirect_data is not None else None
        seen[name] = (s.identifier, digest, nv.get("OSAttr"))
    if ids != sorted(ids):
        problems.append("members are not in ascending hash order")
    for name, want in on_disk.items():
        if name not in seen:
            problems.append(f"{name} is not listed in the catalog")
            continue
        ident, digest, osattr = seen[name]
        if ident != want or digest != want:
            problems.append(
                f"{name}: catalog has {ident.hex()} (indirect data {digest.hex() if digest else None}),"
                f" the file on disk hashes to {want.hex()}"
            )
        else:
            print(f"  ok: catalog lists {name} sha256 {want.hex()}")
        if osattr != "2:10.0":
            problems.append(f"{name}: member OSAttr {osattr!r}")
    extra = set(seen) - set(on_disk)
    if extra:
        problems.append(f"unexpected catalog members {sorted(map(str, extra))}")
    attrs = {}
    for ext in ctl.content_asn1["ctl_extensions"]:
        if ext["extn_id"].dotted == "1.3.6.1.4.1.311.12.2.1":
            v = NameValue.load(ext["extn_value"].native).native
            attrs[v["refname"]] = v["value"]
    want_attrs = {"OS": EXPECTED_OS[arch], "OSAttr": "2:10.0"}
    for i, hwid in enumerate(inf_component_ids(inf_text), 1):
        want_attrs[f"HWID{i}"] = hwid
    if attrs != want_attrs:
        problems.append(f"catalog attributes {attrs}, expected {want_attrs}")
    else:
        print(f"  ok: catalog attributes {attrs}")
    return problems


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    pkg = Path(argv[1])
    arch = argv[2] if len(argv) == 3 else pkg.name
    print(f"check_catalog: {pkg} ({arch})")
    problems = check(pkg, arch)
    for p in problems:
        print(f"  FAIL: {p}")
    print(f"check_catalog: {'FAILED' if problems else 'passed'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
