"""berth/scaffold"""
