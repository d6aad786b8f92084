package icp

// DecodeCandid is the bounded Candid decoder every ledger reply goes through, for the external
// fuzz targets.
var DecodeCandid = decodeCandid
