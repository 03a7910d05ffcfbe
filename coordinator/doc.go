// Package coordinator holds the coordinator's logic that is not flags or
// terminal output (DESIGN point 6). So far: TrackerHealth, the passive
// record behind the warning that no tracker answers.
package coordinator
