"""berth/ui"""
