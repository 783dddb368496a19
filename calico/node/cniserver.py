"""calico-node's CNI socket: it runs the requests the `calico` and `calico-ipam` executables
hand over (calico.cni.client), with everything already loaded and connected.

Contract:
- It listens on a unix stream socket (default `<run-dir>/cni.sock`; `--cni-socket` or
  $CALICO_CNI_SOCKET; empty or `none` disables it), mode 0600, created under a temporary name
  and renamed into place so a client never finds a half-made socket.
- A request is run only if its sender (SO_PEERCRED) is root or our own user, lives in our
  network namespace and has our root directory, and CNI_NETNS names the same file for both
  of us. Anything else is declined (`F`) and the client runs the request itself: a plugin
  started in another host's namespace never has its work done in ours.
- It runs through calico.cni.spec.run_plugin with the plugins' own handlers over
  `WarmResources` (kept datastore connections, IPAM instances with their caches): the same
  code as the executable, so the same result, CNI errors and exit status. The plugin's log
  lines go to calico-node's log (the network config's `log_level` / `log_file_path` apply
  when the executable runs the request itself).
- Each connection is served on its own thread, at most `max_concurrent` at once (the others
  wait in the listen backlog). Concurrency is safe by construction: IPAM takes the host's IPAM
  lock file per request (flock, as between processes) and lends each IPAM instance to one
  request at a time; netlink sockets are opened per request; a thread switches namespace with
  setns(2), which changes only that thread.
- A stale socket file (left by a calico-node that died) is replaced at start; a socket
  somebody answers on is another live server: `CNIServerError`. `close()` stops accepting,
  waits for the requests in flight, and removes the socket file if it is still ours.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import stat
import struct
import threading
import time

from calico.cni import client, ipam_plugin, plugin
from calico.cni.resources import WarmResources
from calico.cni.spec import run_plugin

log = logging.getLogger(__name__)

SOCKET_NAME = "cni.sock"
MAX_CONCURRENT = 16
_UCRED = struct.Struct("3i")  # pid, uid, gid


class CNIServerError(Exception):
    """The socket cannot be served (another live server, or a path that is not a socket)."""


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _parse_env(block: bytes) -> dict[str, str]:
    env = {}
    for entry in block.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


class CNIServer:
    """Serves `path` (see the module docstring) until `close()`."""

    def __init__(self, path: str, max_concurrent: int = MAX_CONCURRENT) -> None:
        self.path = path
        self.res = WarmResources()
        self.handlers = {"calico": plugin.handlers(self.res),
                         "calico-ipam": ipam_plugin.handlers(self.res)}
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._netns = _identity("/proc/self/ns/net")
        self._root = _identity("/")
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._closing = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._acceptor: threading.Thread | None = None
        self.served = 0  # requests run here (not declined)

    # ---- the socket ----------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket and start accepting (the plugin code is loaded first)."""
        self._remove_stale()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(tmp)
            os.chmod(tmp, 0o600)
            sock.listen(64)
            os.rename(tmp, self.path)
        except OSError:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sock, self._inode = sock, _identity(self.path)
        self._acceptor = threading.Thread(target=self._accept_loop, name="cni-server",
                                          daemon=True)
        self._acceptor.start()
        log.info("CNI requests served on %s", self.path)

    def _remove_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise CNIServerError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale CNI socket %s", self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        except OSError as err:
            raise CNIServerError(f"cannot probe {self.path}: {err}") from None
        finally:
            probe.close()
        raise CNIServerError(f"another process serves CNI requests on {self.path}")

    def close(self, wait: float = 30.0) -> None:
        """Stop accepting, let the requests in flight finish, remove our socket file."""
        self._closing.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._acceptor is not None:
            self._acceptor.join(wait)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(wait)
        with contextlib.suppress(OSError):
            if self._inode is not None and _identity(self.path) == self._inode:
                os.unlink(self.path)
        self.res.close()

    def _preload(self) -> None:
        """Import what the first request would otherwise wait for (IPAM, the API models)."""
        import calico.api  # noqa: F401
        import calico.ipam  # noqa: F401

    def _accept_loop(self) -> None:
        try:
            self._preload()
        except ImportError as err:
            log.warning("CNI server: preloading failed (%s); loading on first use", err)
        assert self._sock is not None
        while not self._closing.is_set():
            self._slots.acquire()
            try:
                conn, _ = self._sock.accept()
            except OSError:
                self._slots.release()
                if self._closing.is_set():
                    return
                continue
            t = threading.Thread(target=self._serve, args=(conn,), name="cni-request",
                                 daemon=True)
            with self._lock:
                self._threads.add(t)
            t.start()

    # ---- one request ---------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._handle(conn)
        except Exception:  # a broken client must not take the server down
            log.exception("CNI request failed")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())
            self._slots.release()

    def _handle(self, conn: socket.socket) -> None:
        if client.read_exact(conn, len(client.MAGIC)) != client.MAGIC:
            return  # not our client: nothing sensible to answer
        name = client.read_frame(conn).decode()
        env = _parse_env(client.read_frame(conn))
        stdin = client.read_frame(conn)
        netns = client.read_frame(conn)
        why = self._decline(conn, name, env, netns)
        if why:
            log.info("CNI request declined (%s): the plugin runs it itself", why)
            conn.sendall(b"F" + client.frame(why.encode()))
            return
        out, err = io.StringIO(), io.StringIO()
        with self._lock:
            self.served += 1
        start = time.monotonic()
        status = run_plugin(self.handlers[name], env=env, stdin=stdin, stdout=out, stderr=err)
        log.info("CNI %s %s %s: exit %d in %.3fs", name, env.get("CNI_COMMAND"),
                 env.get("CNI_CONTAINERID", ""), status, time.monotonic() - start)
        conn.sendall(b"R" + status.to_bytes(4, "big") + client.frame(out.getvalue().encode())
                     + client.frame(err.getvalue().encode()))

    def _decline(self, conn: socket.socket, name: str, env: dict[str, str],
                 netns: bytes) -> str:
        """Why this request must run in the plugin's own process ("" to run it here)."""
        if name not in self.handlers:
            return f"unknown plugin {name!r}"
        if self._closing.is_set():
            return "calico-node is stopping"
        pid, uid, _ = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    _UCRED.size))
        if uid not in (0, os.geteuid()):
            return f"sender uid {uid} is neither root nor ours"
        try:
            if _identity(f"/proc/{pid}/ns/net") != self._netns:
                return "sender is in another network namespace"
            if _identity(f"/proc/{pid}/root") != self._root:
                return "sender has another root directory"
        except OSError as err:
            return f"cannot inspect the sender: {err.strerror}"
        if client.netns_identity({b"CNI_NETNS": os.fsencode(env.get("CNI_NETNS", ""))}) \
                != netns:
            return "CNI_NETNS is another file here"
        return ""


def socket_path(run_dir: str, setting: str | None) -> str:
    """The socket to serve: `setting` ($CALICO_CNI_SOCKET / --cni-socket) if given ("" or
    "none": none), else `<run_dir>/cni.sock`."""
    if setting is None:
        return os.path.join(run_dir, SOCKET_NAME)
    return "" if setting.strip().lower() in ("", "none") else setting
