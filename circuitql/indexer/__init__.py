"""From a model to the records a store writes: load any format into a neuron graph (``load``
and the loaders), canonicalize it (``canonical``, kept faithful by ``fidelity``) and sign its
neurons (``signature``), the stages run by ``pipeline``; ``check`` compares a file with what
is loaded and indexed from it."""
