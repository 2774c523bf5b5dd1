"""Common nodes: inject, debug, catch, status, complete, link, comment, junction."""
