"""TLS certificates for the stack's Dask cluster: a private CA and one certificate per role.

A Dask scheduler runs any function a connected client sends it, so an open scheduler port is remote
code execution by design. The stack's scheduler and workers therefore talk TLS with mutual
authentication: they accept only peers that show a certificate from this CA (Dask checks the chain,
not host names). The CA's private key is never written. It signs the three role certificates
(scheduler, worker, client) and is then dropped. No one can mint another certificate later;
``--force`` replaces the whole set.

    python -m doughflow.stack.certificates DIR        # ca.pem, {scheduler,worker,client}.{pem,key}

The compose ``certs`` service runs this into the ``certs`` volume. Keys are written 0600, and
nothing here is committed: tests make their own set in a temporary folder. ECDSA P-256 keys: the
whole set is made in about 2 ms here (after importing cryptography).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from pathlib import Path

ROLES = ("scheduler", "worker", "client")
# Names the scheduler and workers are reached by: compose service names and loopback.
HOST_NAMES = ("dask-scheduler", "dask-worker", "localhost")
VALIDITY = datetime.timedelta(days=365)


def certificate_files(folder: Path) -> dict[str, Path]:
    """Every file ``write_certificates`` makes, by name: ``ca``, ``<role>_cert``, ``<role>_key``."""
    files = {"ca": folder / "ca.pem"}
    for role in ROLES:
        files[f"{role}_cert"] = folder / f"{role}.pem"
        files[f"{role}_key"] = folder / f"{role}.key"
    return files


def _write_private(path: Path, data: bytes) -> None:
    """Created 0600 from the start: the key never exists with wider permissions."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def write_certificates(folder: Path, force: bool = False) -> dict[str, Path]:
    """The CA and the role certificates in ``folder``. An existing complete set is kept unless
    ``force``; a partial one is replaced."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    files = certificate_files(folder)
    if not force and all(path.exists() for path in files.values()):
        return files

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "doughflow stack CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName(name) for name in HOST_NAMES] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]

    pem = serialization.Encoding.PEM
    files["ca"].write_bytes(ca_cert.public_bytes(pem))
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"doughflow dask {role}")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            # Every Dask node both accepts and opens connections (workers fetch from each other).
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(
            files[f"{role}_key"],
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        files[f"{role}_cert"].write_bytes(cert.public_bytes(pem))
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--force", action="store_true", help="replace an existing set (every peer needs the new one)")
    args = parser.parse_args(argv)
    existed = all(path.exists() for path in certificate_files(args.folder).values())
    files = write_certificates(args.folder, force=args.force)
    print(
        f"{'kept' if existed and not args.force else 'wrote'} {', '.join(path.name for path in files.values())} in {args.folder}"
    )


if __name__ == "__main__":
    main()
