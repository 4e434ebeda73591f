from twisted.application.service import ServiceMaker

portsuite = ServiceMaker(
    "portsuite",
    "portsuite.tap",
    "A multi-protocol server suite: every service of a TOML config, each on its port",
    "portsuite",
)
