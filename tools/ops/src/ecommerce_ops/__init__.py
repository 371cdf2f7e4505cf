"""The operator command line `ecommerce`."""
