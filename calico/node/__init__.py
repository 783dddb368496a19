"""calico-node: registers the Node and supervises Felix, the BGP renderer and BIRD."""
