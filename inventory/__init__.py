"""Sites, devices, regions and credential references; YAML/CSV loading with located errors."""

from inventory.config import AgentConfig, CentralConfig, Config, load_config
from inventory.errors import ConfigError, InventoryError, Issue, SecretError
from inventory.loader import load_inventory
from inventory.model import Check, Device, DeviceKind, Inventory, Link, Region, Site
from inventory.secrets import SecretRef
from inventory.target import Target

__all__ = [
    "AgentConfig",
    "CentralConfig",
    "Check",
    "Config",
    "ConfigError",
    "Device",
    "DeviceKind",
    "Inventory",
    "InventoryError",
    "Issue",
    "Link",
    "Region",
    "SecretError",
    "SecretRef",
    "Site",
    "Target",
    "load_config",
    "load_inventory",
]
