"""PortAddresses serialises its IPAM calls: Neutron's handlers and the resync share one IPAM
per host, and an IPAM instance serves one thread at a time."""

import threading

from calico.openstack.addresses import PortAddresses


class _OneAtATimeIPAM:
    """Records whether two calls ever overlapped."""

    def __init__(self) -> None:
        self.inside = 0
        self.overlapped = False
        self.release_started = threading.Event()
        self.gate = threading.Event()

    def _enter(self) -> None:
        self.inside += 1
        if self.inside > 1:
            self.overlapped = True

    def get_assignment(self, ip):
        self._enter()
        self.inside -= 1
        return None

    def assign_ip(self, ip, handle, attrs):
        self._enter()
        self.inside -= 1

    def release_by_handle(self, handle):
        self._enter()
        self.release_started.set()
        self.gate.wait(5)
        self.inside -= 1
        return []


def test_claim_waits_for_a_release_in_flight_on_another_thread():
    pa = PortAddresses(backend=None)
    fake = _OneAtATimeIPAM()
    pa._ipam["h1", None] = fake
    releaser = threading.Thread(target=pa.release, args=("p1", "h1"))
    releaser.start()
    assert fake.release_started.wait(5)
    claimed = []
    claimer = threading.Thread(target=lambda: claimed.append(pa.claim("p2", "h1", ["10.0.0.1"])))
    claimer.start()
    claimer.join(0.2)
    assert claimer.is_alive(), "claim ran while a release held the host's IPAM"
    fake.gate.set()
    releaser.join(5)
    claimer.join(5)
    assert claimed == [["10.0.0.1"]]
    assert not fake.overlapped
