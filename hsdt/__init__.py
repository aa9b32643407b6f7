"""HSĐT — hồ sơ điện tử của nhà trường: học bạ và sổ, ký số theo trình tự, lưu trữ bất biến."""

__version__ = "0.1.0"
