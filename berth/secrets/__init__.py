"""berth/secrets"""
