"""kerberos package."""
