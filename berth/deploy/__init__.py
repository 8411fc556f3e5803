"""berth/deploy"""
