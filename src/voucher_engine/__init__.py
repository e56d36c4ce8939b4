"""Voucher engine: targeted consumption subsidies paid as e-CNY smart-contract vouchers (数字人民币智能合约消费券)."""

__version__ = "0.1.0"
