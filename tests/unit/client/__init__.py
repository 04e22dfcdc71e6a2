"""Tests of minietcd.client (unit tests, and compat tests against real etcd 3.4)."""
