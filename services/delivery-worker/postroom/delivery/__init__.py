"""The delivery worker: empties the queue into local mailboxes and remote mail servers."""
