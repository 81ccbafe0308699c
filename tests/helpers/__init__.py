"""Helpers the tests share: environments, simulators, servers, forced races. Test modules import these, never
each other."""
