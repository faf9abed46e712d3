//! openwork-server: the remote-control HTTP API of an openwork workspace.
