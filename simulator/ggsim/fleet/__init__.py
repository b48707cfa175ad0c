"""A simulated core as a fleet member: deployments from a control plane (or AWS) through IoT Jobs, fleet
status back (agent.py, components.py); many cores on one host (launcher.py); the fleet at a glance
(view.py)."""

from .agent import FleetAgent, FleetOptions

__all__ = ["FleetAgent", "FleetOptions"]
