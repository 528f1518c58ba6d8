"""smtp-in: the SMTP ingress (inbound MX and authenticated submission) with a durable spool."""
