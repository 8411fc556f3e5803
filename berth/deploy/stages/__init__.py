"""berth/deploy/stages"""
