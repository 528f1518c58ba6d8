"""The mailbox API and web mail: REST over the mail store, admin, message trace, browser UI."""
