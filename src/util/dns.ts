// Names Wharf builds hostnames from (projects, instances, ports) are DNS labels (RFC 1123).

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
