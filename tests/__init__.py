"""Tests of mailbot; servers.py holds the real servers they run against."""
