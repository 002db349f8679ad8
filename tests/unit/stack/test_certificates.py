"""The Dask certificates: a CA and three role certificates that authenticate each other in a real
TLS handshake (both ways), keys readable by their owner only, no CA key left behind; a peer from
another CA set is refused."""

from __future__ import annotations

import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from doughflow.stack.certificates import ROLES, certificate_files, main, write_certificates


def _context(files: dict, role: str, server: bool) -> ssl.SSLContext:
    """Both sides as Dask builds them: the CA to verify against, a certificate to show, a required
    peer certificate, no host-name check."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(files["ca"])
    context.load_cert_chain(files[f"{role}_cert"], files[f"{role}_key"])
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> tuple[str, str]:
    """A TLS exchange over a socket pair; returns what the server read, then what the client read."""
    left, right = socket.socketpair()
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(left, server_side=True) as connection:
                connection.sendall(b"scheduler")
                outcome["server"] = connection.recv(16).decode()
        except (ssl.SSLError, OSError) as error:
            outcome["server"] = error

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(right) as connection:
            connection.sendall(b"client")
            outcome["client"] = connection.recv(16).decode()
    finally:
        thread.join(timeout=30)
    if isinstance(outcome["server"], Exception):
        raise outcome["server"]
    return outcome["server"], outcome["client"]


def test_the_roles_authenticate_each_other(tmp_path):
    files = write_certificates(tmp_path / "certs")
    assert set(files) == set(certificate_files(tmp_path / "certs"))
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == sorted(p.name for p in files.values())
    ca = x509.load_pem_x509_certificate(files["ca"].read_bytes())
    for role in ROLES:
        assert stat.S_IMODE(files[f"{role}_key"].stat().st_mode) == 0o600
        x509.load_pem_x509_certificate(files[f"{role}_cert"].read_bytes()).verify_directly_issued_by(ca)
    assert _handshake(_context(files, "scheduler", True), _context(files, "client", False)) == ("client", "scheduler")
    assert _handshake(_context(files, "worker", True), _context(files, "worker", False)) == ("client", "scheduler")


def test_a_peer_from_another_ca_is_refused(tmp_path):
    ours, theirs = write_certificates(tmp_path / "ours"), write_certificates(tmp_path / "theirs")
    intruder = _context(ours, "client", False)
    intruder.load_cert_chain(theirs["client_cert"], theirs["client_key"])  # shows the other set's certificate
    with pytest.raises(ssl.SSLError):
        _handshake(_context(ours, "scheduler", True), intruder)


def test_an_existing_set_is_kept_unless_forced(tmp_path, capsys):
    folder = tmp_path / "certs"
    first = write_certificates(folder)["ca"].read_bytes()
    main([str(folder)])
    assert "kept" in capsys.readouterr().out and first == (folder / "ca.pem").read_bytes()
    main([str(folder), "--force"])
    assert "wrote" in capsys.readouterr().out and first != (folder / "ca.pem").read_bytes()
    (folder / "worker.key").unlink()  # a partial set is replaced whole
    write_certificates(folder)
    assert all(path.exists() for path in certificate_files(folder).values())
