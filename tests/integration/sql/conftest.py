"""Shares the SQL integration fixtures (defined in sqltest_support) with this folder's tests."""

from sqltest_support import make_plugin

__all__ = ["make_plugin"]
