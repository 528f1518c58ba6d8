-- TLS-RPT (RFC 8460): outbound sessions to destinations with an MTA-STS policy or DANE TLSA
-- records, counted per day, policy and outcome ('success' or a §4.3 result type), until the
-- daily report task has sent them to the domain's rua and removed them.
CREATE TABLE tls_report_counts (
    day            date NOT NULL,
    policy_domain  text NOT NULL,
    policy_type    text NOT NULL CHECK (policy_type IN ('sts', 'tlsa')),
    policy_string  text NOT NULL,
    mx_host        text NOT NULL,
    result_type    text NOT NULL,
    sessions       bigint NOT NULL CHECK (sessions > 0),
    PRIMARY KEY (day, policy_domain, policy_type, policy_string, mx_host, result_type)
);
