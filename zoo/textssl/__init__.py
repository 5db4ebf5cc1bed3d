"""TextSSL (arXiv 2112.06386): per-document sentence graphs (``graph``) and their data module (``data``).

The network is ``zoo.models.textssl.TextSSLNet``, its LightningModule ``zoo.methods.textssl.TextSSLModule``.
Importing this package imports neither torch_geometric nor Lightning.
"""
