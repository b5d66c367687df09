"""The detection flags live in ``config.flags`` (below every layer); this name is kept for old imports."""

from config.flags import FileEnvProvider, enabled_rules, env_name, flag_number, install, rule_enabled

__all__ = ["FileEnvProvider", "enabled_rules", "env_name", "flag_number", "install", "rule_enabled"]
