"""Address spaces: stateless IPv4/IPv6 translation at workload interfaces (issue #19; our
extension, see calc/spaces.py).

    bpf/xlat.c     the tc BPF program: stateless IPv4 <-> IPv6 (RFC 7915) per endpoint
    translator.py  `Translator`: loads it, attaches/detaches it per interface, reads back
    manager.py     `XlatManager`: the Felix side, endpoint messages in, Translator calls out
"""
