"""berth/remote"""
