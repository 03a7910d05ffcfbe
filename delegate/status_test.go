package delegate

import (
	"reflect"
	"testing"
	"time"
)

// TestStatusMsgRoundTrip: every field of a report survives the trip
// statusMsg → WorkerStatus → statusMsg, and every WorkerStatus field a
// node reports is filled in by the coordinator.
func TestStatusMsgRoundTrip(t *testing.T) {
	var m statusMsg
	v := reflect.ValueOf(&m).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		default:
			t.Fatalf("statusMsg.%s: kind %v not handled by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	now := time.Unix(1700000000, 0)
	st := m.workerStatus("node-a", now)
	if got := newStatusMsg(m.Job, st); *got != m {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, m)
	}
	sv := reflect.ValueOf(st)
	for i := range sv.NumField() {
		name := sv.Type().Field(i).Name
		switch name {
		case "State", "Identity": // set by the sub-chief, not reported
			continue
		case "FirstRequest", "FirstPeer":
			// The start-up latency the user waits through is the local
			// worker's; a node's own times are on its clock and protocol
			// version 2 does not carry them.
			continue
		}
		if sv.Field(i).IsZero() {
			t.Errorf("WorkerStatus.%s is not filled from a report", name)
		}
	}
}
