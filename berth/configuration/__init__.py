"""berth/configuration"""
