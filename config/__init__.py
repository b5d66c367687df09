"""Configuration, below every layer: the settings object (``config.settings``) and the detection flags
(``config.flags``). Storage, jobs, handlers and the bot all read them; they import none of those."""
